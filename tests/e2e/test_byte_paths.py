"""File names are bytes, and files may be unreadable: whole workflows meet them (issue 10, items 5, 12, 13).

A Latin-1 ``café.txt``, an empty directory with such a name, and a directory
whose name holds U+2028 go through run, doctor, fork, exec, commit and run of
the committed snapshot. A ``chmod 000`` file, as a user who then cannot read
it, is reported and left out of the version instead of failing the command.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from domarkx.data.store import Store
from domarkx.workspace.manager import WorkspaceManager
from domarkx.workspace.plugins._gitstore import GitStore

DOC = """\
## user

> make odd names

## assistant

```bash
printf 'latin\\n' > $'caf\\xe9.txt'
mkdir $'caf\\xe9-empty' $'line\\u2028sep'
mkdir $'line\\u2028sep/inner'
```

## user

> and one more

## assistant

```bash
echo later > later.txt
```
"""
NAMES = sorted([b"caf\xe9.txt", b"caf\xe9-empty", "line\u2028sep".encode()])


def listing(work: Path) -> list[bytes]:
    return sorted(os.listdir(os.fsencode(work)))


def work_of(cli, instance: str) -> Path:  # type: ignore[no-untyped-def]
    (resource,) = json.loads(cli("instances", "inspect", instance, "--json").out)["resources"]
    return Path(resource["location"])


def test_odd_names_survive_run_doctor_fork_and_commit(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "odd.md"
    doc.write_text(DOC)
    instance = cli("run", str(doc), "-q").out.strip()
    assert listing(work_of(cli, instance)) == sorted([*NAMES, b"later.txt"])

    checked = cli("doctor")
    assert checked.code == 0, checked
    fork = cli("fork", instance, "--at", "1", "-q")
    assert fork.code == 0, fork
    assert listing(work_of(cli, fork.out.strip())) == NAMES
    assert os.listdir(os.path.join(os.fsencode(work_of(cli, fork.out.strip())), "line\u2028sep".encode())) == [b"inner"]

    snapshot = cli("commit", instance).out.strip()
    again = cli("run", snapshot, "-q")
    assert again.code == 0, again
    assert listing(work_of(cli, again.out.strip())) == sorted([*NAMES, b"later.txt"])
    assert cli("doctor").code == 0


def test_a_version_written_by_an_older_domarkx_with_u2028_still_loads(domarkx_home: Path) -> None:
    """Older versions wrote U+2028 raw inside the empty-dirs JSON; it used to split the line."""
    git = GitStore(domarkx_home / "plugins" / "local_shell" / "objects.git")
    tree = git._run(["mktree"], stdin=b"").strip().decode()
    message = '\nempty-dirs: ["line\u2028sep"]\n'.encode()
    commit = git._run(["commit-tree", tree, "-F", "-"], stdin=b"domarkx local_shell\n" + message).strip().decode()

    assert git.read(commit).empty_dirs == ("line\u2028sep".encode(),)
    assert git.missing([commit]) == set()


def test_doctor_reports_a_damaged_version_instead_of_crashing(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "odd.md"
    doc.write_text(DOC)
    instance = cli("run", str(doc), "-q").out.strip()
    git = GitStore(domarkx_home / "plugins" / "local_shell" / "objects.git")
    tree = git._run(["mktree"], stdin=b"").strip().decode()
    damaged = git._run(["commit-tree", tree, "-F", "-"], stdin=b"x\n\nempty-dirs: [not json\n").strip().decode()
    with Store(domarkx_home) as store:
        head = store.instances.row(instance).head_version
        assert head is not None
        row = store.versions.get(head)
        assert row is not None
        with store.write() as db:
            db.execute(
                "UPDATE workspace_versions SET versions = ? WHERE id = ?",
                (json.dumps({**row.versions, "local_shell": damaged}), head),
            )

    result = cli("doctor")

    assert result.code == 1, result
    assert f"local_shell version {damaged} (resource local_shell) is missing" in result.out
    assert "internal error" not in result.err


# -- an unreadable file, as a user who cannot read it ------------------------------------

UNREADABLE = """
import json, sys
from pathlib import Path
from domarkx.data.store import Store
from domarkx.workspace.manager import WorkspaceManager
from domarkx.data.models import WorkspaceConfig
store = Store(Path(sys.argv[1]))
manager = WorkspaceManager(store)
workspace = manager.create(WorkspaceConfig.model_validate({"resources": [{"type": "local_shell", "sandbox": "none"}]}))
command = "echo s > secret && echo t > kept && chmod 000 secret && echo done"
outcome = manager.call(workspace, "run_command", {"command": command})
version = manager.commit(workspace)
plugin = manager.plugin("local_shell")
names = [e.name.decode() for e in plugin.list_version(version.versions["local_shell"])]
manager.call(workspace, "run_command", {"command": "chmod 600 secret"})
later = manager.commit(workspace)
after = [e.name.decode() for e in plugin.list_version(later.versions["local_shell"])]
print(json.dumps({"ok": outcome.ok, "text": outcome.text, "notes": version.notes, "names": names,
                  "later_notes": later.notes, "later_names": after}))
"""


@pytest.fixture
def unprivileged() -> Iterator[tuple[list[str], Path]]:
    """A command prefix that runs as a user who cannot read a ``chmod 000`` file, and a home that user owns."""
    home = Path(tempfile.mkdtemp(prefix="domarkx-unprivileged-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            shutil.rmtree(home)
            pytest.skip("running as root without setpriv: cannot become a user that chmod 000 stops")
        os.chown(home, 65534, 65534)
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    yield prefix, home
    shutil.rmtree(home, ignore_errors=True)


def test_an_unreadable_file_is_reported_not_fatal(unprivileged: tuple[list[str], Path]) -> None:
    prefix, home = unprivileged
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}
    done = subprocess.run(
        [*prefix, sys.executable, "-c", UNREADABLE, str(home / "store")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["text"] == "done\n"  # the call's result is kept
    assert len(result["notes"]) == 1
    assert "could not read 1 path(s)" in result["notes"][0] and "secret" in result["notes"][0]
    assert result["names"] == ["kept"]  # what could be read is versioned
    assert (result["later_notes"], result["later_names"]) == ([], ["kept", "secret"])


def test_manager_exposes_notes_only_when_there_are_some(domarkx_home: Path) -> None:
    from domarkx.data.models import WorkspaceConfig

    with Store(domarkx_home) as store:
        manager = WorkspaceManager(store)
        workspace = manager.create(WorkspaceConfig.model_validate({"resources": [{"type": "local_shell"}]}))
        assert manager.commit(workspace).notes == []
