"""``domarkx prune`` gives the disk back: versions nothing links, what plugins kept for them, blobs, free pages.

And it never takes what is still needed: another instance's versions stay
loadable (forked and checked by ``doctor`` afterwards), and nothing is
collected while another domarkx is making or committing a workspace.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from domarkx.data.store import Store
from domarkx.session.prune import prune

DOC = """\
```workspace-config
resources:
  - type: local_shell
  - type: sqlite
    name: db
    setup: "CREATE TABLE t (x);"
```

## user

> make data

## assistant

```bash
head -c 2000000 /dev/urandom > big.bin
```

```sql
INSERT INTO t VALUES (randomblob(300000));
```
"""


def run(cli, tmp_path: Path, name: str) -> str:  # type: ignore[no-untyped-def]
    doc = tmp_path / f"{name}.md"
    doc.write_text(DOC)
    result = cli("run", str(doc), "--name", name, "-q", "--no-cache")  # each its own random data
    assert result.code == 0, result
    return result.out.strip()


def git_objects(home: Path) -> int:
    out = subprocess.run(
        ["git", "count-objects", "-v"],
        env={"GIT_DIR": str(home / "plugins" / "local_shell" / "objects.git"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = dict(line.split(": ") for line in out.splitlines())
    return int(fields["count"]) + int(fields["in-pack"])


def test_prune_frees_a_removed_instance_and_keeps_the_others(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    kept = run(cli, tmp_path, "kept")
    run(cli, tmp_path, "gone")
    objects = git_objects(domarkx_home)
    assert cli("instances", "rm", "--force", "gone").code == 0

    dry = json.loads(cli("prune", "--dry-run", "--json").out)
    assert dry["dry_run"] and dry["versions"] >= 1 and dry["plugins"] == {}
    assert any("dry run" in note for note in dry["notes"])
    assert git_objects(domarkx_home) == objects  # nothing went

    pruned = json.loads(cli("prune", "--json").out)

    assert pruned["versions"] == dry["versions"]
    assert pruned["plugins"]["local_shell"] > 1_000_000  # the removed instance's random file
    assert pruned["blobs"] >= 1 and pruned["blob_bytes"] > 300_000  # its database backup
    assert pruned["bytes"] > 1_300_000
    assert git_objects(domarkx_home) < objects
    assert cli("doctor").code == 0
    fork = cli("fork", kept, "--at", "1", "-q")
    assert fork.code == 0, fork
    listed = cli("exec", fork.out.strip(), "--", "wc -c < big.bin")
    assert listed.out.strip() == "2000000"
    rows = cli("exec", fork.out.strip(), "--resource", "db", "--", "SELECT length(x) FROM t")
    assert "300000" in rows.out
    again = json.loads(cli("prune", "--json").out)
    assert (again["versions"], again["blobs"]) == (0, 0)


def test_nothing_is_collected_while_another_domarkx_makes_a_workspace(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    run(cli, tmp_path, "gone")
    assert cli("instances", "rm", "--force", "gone").code == 0
    with Store(domarkx_home) as other, other.provisioning(), Store(domarkx_home) as store:
        report = prune(store)
    assert (report.versions, report.plugins) == (0, {})
    assert any("another domarkx" in note for note in report.notes)
    assert json.loads(cli("prune", "--json").out)["versions"] >= 1


def test_vacuum_gives_free_pages_back(domarkx_home: Path) -> None:
    with Store(domarkx_home) as store:
        with store.write() as db:
            db.executemany(
                "INSERT INTO blob_refs(owner, digest) VALUES (?, ?)", [(f"o{i}", "x" * 500) for i in range(4000)]
            )
        with store.write() as db:
            db.execute("DELETE FROM blob_refs")
        assert store.vacuum(dry_run=True) > 1_000_000
        before = (domarkx_home / "store.db").stat().st_size
        freed = store.vacuum()
        assert freed > 1_000_000
        assert (domarkx_home / "store.db").stat().st_size < before
        assert store.vacuum(dry_run=True) == 0
