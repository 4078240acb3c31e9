"""``domarkx doctor``: damage is reported with what needs it; leftovers of killed commands are repaired."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from domarkx.data.models import ResourceConfig, WorkspaceConfig
from domarkx.data.store import Store
from domarkx.session.doctor import BUSY, check
from domarkx.session.instance import InstanceManager
from domarkx.workspace.manager import WorkspaceManager

DOC = """\
---
title: doctor
---

## user

> make a file

## assistant

```bash
echo hello > a.txt
```
"""

SQLITE_DOC = """\
---
title: doctor sqlite
---

```workspace-config
resources:
  - type: sqlite
```

## user

> make a table

## assistant

```sql
CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (42);
```
"""


@pytest.fixture
def store(domarkx_home: Path) -> Iterator[Store]:
    with Store(domarkx_home) as opened:
        yield opened


def run(cli, tmp_path: Path, text: str = DOC, name: str = "one") -> str:  # type: ignore[no-untyped-def]
    doc = tmp_path / f"{name}.md"
    doc.write_text(text)
    result = cli("run", str(doc), "-q", "--name", name)
    assert result.code == 0, result
    return str(result.out.strip().splitlines()[-1])


def instance_row(store: Store, name: str) -> sqlite3.Row:
    row: sqlite3.Row = store.db.execute("SELECT * FROM instances WHERE name = ?", (name,)).fetchone()
    return row


def shell_config() -> WorkspaceConfig:
    return WorkspaceConfig(resources=[ResourceConfig.model_validate({"type": "local_shell"})])


def test_a_healthy_store_is_intact(cli, tmp_path: Path, store: Store) -> None:  # type: ignore[no-untyped-def]
    run(cli, tmp_path)
    report = check(store)
    assert report.ok
    assert (report.problems, report.leftovers, report.notes) == ([], [], [])
    assert report.checked == {"blobs": 2, "snapshots": 1, "instances": 1, "resource versions": 2}


def test_a_corrupt_blob_names_the_snapshot_and_the_instances_that_need_it(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, store: Store
) -> None:
    run(cli, tmp_path)
    row = store.db.execute("SELECT id, document FROM snapshots").fetchone()
    store.blob_path(row["document"]).write_bytes(b"bit rot")

    [problem] = check(store).problems
    assert problem.startswith(f"blob {row['document']} is corrupt")
    assert problem.endswith(f"needed by snapshot {row['id'][7:19]}, instance one")

    store.blob_path(row["document"]).unlink()
    assert "is missing; needed by" in check(store).problems[0]


def test_a_lost_resource_version_blob_names_the_instance(cli, tmp_path: Path, store: Store) -> None:  # type: ignore[no-untyped-def]
    run(cli, tmp_path, SQLITE_DOC, name="sqldb")
    versions = json.loads(store.db.execute("SELECT versions FROM workspace_versions").fetchall()[-1][0])
    store.blob_path(versions["sqlite"]).unlink()

    problems = check(store).problems
    assert any(p.startswith(f"blob {versions['sqlite']} is missing") and p.endswith("instance sqldb") for p in problems)


def test_a_lost_git_commit_makes_the_version_unloadable(cli, tmp_path: Path, store: Store) -> None:  # type: ignore[no-untyped-def]
    run(cli, tmp_path)
    head = instance_row(store, "one")["head_version"]
    commit = json.loads(store.db.execute("SELECT versions FROM workspace_versions WHERE id = ?", (head,)).fetchone()[0])
    loose = store.home / "plugins" / "local_shell" / "objects.git" / "objects" / commit["local_shell"][:2]
    (loose / commit["local_shell"][2:]).unlink()

    problems = check(store).problems
    assert f"instance one: workspace version {head} cannot be loaded: local_shell version" in problems[0]
    assert problems[0].endswith("(resource local_shell) is missing")


def test_a_lost_git_object_inside_a_commit_is_found(cli, tmp_path: Path, store: Store) -> None:  # type: ignore[no-untyped-def]
    instance = run(cli, tmp_path)
    blob = cli("exec", instance, "--", "echo hello | git hash-object --stdin").out.strip()
    objects = store.home / "plugins" / "local_shell" / "objects.git" / "objects"
    (objects / blob[:2] / blob[2:]).unlink()

    assert any("cannot be loaded: local_shell version" in p for p in check(store).problems)


def test_a_message_linking_a_version_that_does_not_exist(cli, tmp_path: Path, store: Store) -> None:  # type: ignore[no-untyped-def]
    run(cli, tmp_path)
    instance_id = instance_row(store, "one")["id"]
    body = json.loads(store.db.execute("SELECT body FROM messages WHERE idx = 1").fetchone()[0])
    body["workspace_version"] = "sha256:" + "0" * 64
    with store.write() as db:
        db.execute("UPDATE messages SET body = ? WHERE instance_id = ? AND idx = 1", (json.dumps(body), instance_id))

    assert check(store).problems == [
        f"instance one: workspace version sha256:{'0' * 64} cannot be loaded: it is not in the store"
    ]


def test_an_instance_whose_resource_directory_vanished(cli, tmp_path: Path, store: Store) -> None:  # type: ignore[no-untyped-def]
    run(cli, tmp_path)
    resource = store.db.execute("SELECT id FROM resources").fetchone()[0]
    (store.home / "resources" / resource / "state.json").unlink()
    for path in sorted((store.home / "resources" / resource).rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (store.home / "resources" / resource).rmdir()

    assert check(store).problems == ["instance one: resource local_shell (local_shell) has lost its state directory"]


def test_leftovers_of_killed_commands_are_repaired(cli, tmp_path: Path, store: Store) -> None:  # type: ignore[no-untyped-def]
    run(cli, tmp_path)
    workspaces = WorkspaceManager(store)
    abandoned = workspaces.create(shell_config(), pending=True)  # a run killed before its instance row
    standalone = workspaces.create(shell_config())  # the library's own use: not a leftover
    stray = store.home / "resources" / "local_shell-0123456789abcdef"  # killed before its row
    (stray / "work").mkdir(parents=True)
    (store.tmp / "tmpx1y2z3").write_bytes(b"half a blob")
    (store.home / "locks" / "instance-0123").write_bytes(b"")  # a run killed before its instance row
    live_lock = store.home / "locks" / f"instance-{instance_row(store, 'one')['id']}"

    report = check(store)
    assert report.ok
    assert len(report.leftovers) == 4
    assert any(abandoned.id in line for line in report.leftovers)
    assert any(str(stray) in line for line in report.leftovers)
    assert "1 lock file(s) of instances that do not exist" in report.leftovers

    repaired = check(store, repair=True)
    assert repaired.ok and repaired.leftovers == [] and len(repaired.repaired) == 4
    assert not stray.exists() and list(store.tmp.iterdir()) == []
    assert list((store.home / "locks").iterdir()) == [live_lock]
    assert not (store.home / "resources" / abandoned.resources[0].id).exists()
    assert workspaces.open(standalone.id).resources == standalone.resources
    after = check(store)
    assert after.ok and after.leftovers == [] and after.repaired == []


def test_work_in_progress_is_not_taken_for_a_leftover(cli, tmp_path: Path, store: Store, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    workspaces = WorkspaceManager(store)
    in_flight = workspaces.create(shell_config(), pending=True)
    with Store(domarkx_home) as other, other.provisioning():  # another process between rows and directories
        report = check(store, repair=True)
    assert report.ok and report.leftovers == [] and report.repaired == []
    assert report.notes == [BUSY]
    assert workspaces.open(in_flight.id).resources == in_flight.resources


def test_an_interrupted_rm_leaves_a_leftover_not_a_broken_instance(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(cli, tmp_path)

    def killed(self: WorkspaceManager, workspace: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(WorkspaceManager, "destroy", killed)
    with pytest.raises(KeyboardInterrupt):
        InstanceManager(store).remove("one", force=True)
    monkeypatch.undo()

    report = check(store)
    assert report.ok and report.checked["instances"] == 0
    assert [line.split(" (")[0] for line in report.leftovers] == [
        f"workspace {store.db.execute('SELECT id FROM workspaces').fetchone()[0]}",
        "1 lock file(s) of instances that do not exist",
    ]
    assert check(store, repair=True).repaired
    assert store.db.execute("SELECT COUNT(*) FROM workspaces").fetchone()[0] == 0
    assert list((store.home / "resources").iterdir()) == []


def test_cli_exit_codes_and_json(cli, tmp_path: Path, store: Store) -> None:  # type: ignore[no-untyped-def]
    run(cli, tmp_path)
    (store.tmp / "partial").write_bytes(b"x")

    text = cli("doctor")
    assert text.code == 0
    assert "leftover: 1 partial write(s)" in text.out and "store is intact" in text.out

    repaired = json.loads(cli("doctor", "--repair", "--json").out)
    assert set(repaired) == {"ok", "checked", "problems", "leftovers", "repaired", "notes", "environment"}
    assert repaired["ok"] and repaired["repaired"]

    row = store.db.execute("SELECT document FROM snapshots").fetchone()
    store.blob_path(row["document"]).write_bytes(b"bit rot")
    broken = cli("doctor")
    assert broken.code == 1
    assert "problem: blob" in broken.out and broken.out.rstrip().endswith("1 problem(s)")


def test_prune_sweeps_abandoned_workspaces_too(cli, store: Store) -> None:  # type: ignore[no-untyped-def]
    abandoned = WorkspaceManager(store).create(shell_config(), pending=True)
    dry = json.loads(cli("prune", "--dry-run", "--json").out)
    assert [line.split(" (")[0] for line in dry["workspaces"]] == [f"workspace {abandoned.id}"]
    assert WorkspaceManager(store).abandoned()[0] == [abandoned]

    assert f"removed workspace {abandoned.id}" in cli("prune").out
    assert WorkspaceManager(store).abandoned() == ([], [])
