"""A full disk while storing: a clear one-line error, an intact store, and an instance that still works.

The disk fills at each place domarkx writes: a blob (``import``), the SQLite
database (a message saved by ``send``, a step of the turn), the git object store
of a ``local_shell`` workspace and a resource's state file (the commit after a
step, ``exec``). In-process the failure is injected where the OS would report
it; the last test fills a real (tmpfs) disk when the machine allows mounting one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from domarkx.data.store import Store
from domarkx.workspace.plugins import _gitstore, _state

DOC = """\
---
title: disk full
---

## user

> make a file

## assistant

```bash
echo kept > kept.txt
```
"""

SCRIPT = """\
- tool_calls:
    - name: run_command
      arguments: {command: "seq 1 40000"}
- content: Counted.
"""

Fault = Callable[[pytest.MonkeyPatch], None]


def no_space(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def blob_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The blob's bytes do not reach the disk."""
    monkeypatch.setattr(os, "fsync", no_space)


def blob_create(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not even the blob's temporary file can be made."""
    monkeypatch.setattr(tempfile, "mkstemp", no_space)


def database(extra_pages: int) -> Fault:
    """SQLite may grow by ``extra_pages`` pages only, then reports SQLITE_FULL as on a full disk."""

    def fault(monkeypatch: pytest.MonkeyPatch) -> None:
        opened = Store.__init__

        def clamped(self: Store, home: Path | None = None) -> None:
            opened(self, home)
            pages = self.db.execute("PRAGMA page_count").fetchone()[0]
            self.db.execute(f"PRAGMA max_page_count = {pages + extra_pages}")

        monkeypatch.setattr(Store, "__init__", clamped)

    return fault


def git_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """``git add`` cannot write its objects, and says so the way git does."""
    real = subprocess.run

    def run(args: list[str], **kwargs: Any) -> Any:
        if Path(args[0]).name == "git" and args[1] == "add":
            stderr = (
                "error: unable to create temporary file: No space left on device\n"
                "error: kept.txt: failed to insert into database\nfatal: adding files failed\n"
            )
            return subprocess.CompletedProcess(args, 128, "", stderr)
        return real(args, **kwargs)

    monkeypatch.setattr(_gitstore.subprocess, "run", run)


def resource_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resource's state file cannot be replaced."""
    monkeypatch.setattr(_state.tempfile, "mkstemp", no_space)


@pytest.fixture
def instance(cli, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    result = cli("run", str(doc), "-q")
    assert result.code == 0, result
    return str(result.out.strip())


@pytest.fixture
def script(tmp_path: Path) -> str:
    path = tmp_path / "script.yaml"
    path.write_text(SCRIPT)
    return f"replay:{path}"


def assert_clear_failure(result: Any) -> None:
    """Exit 1, one ``error:`` line and a hint about the disk: nothing a user has to decode."""
    assert result.code == 1, result
    lines = result.err.strip().splitlines()
    assert lines[0].startswith("error: ") and len(lines) <= 2, result.err
    assert "internal error" not in result.err and "Traceback" not in result.err
    assert "the disk is full: free some space (`domarkx prune` deletes unused data), then retry" in result.err


def assert_intact(cli) -> None:  # type: ignore[no-untyped-def]
    report = json.loads(cli("doctor", "--json").out)
    assert report["ok"] and report["problems"] == [] and report["leftovers"] == [], report


@pytest.mark.parametrize("fault", [blob_write, blob_create], ids=["blob-write", "blob-create"])
def test_import(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "big.md"
    doc.write_text(DOC.replace("make a file", "x" * 200_000))
    with monkeypatch.context() as patch:
        fault(patch)
        assert_clear_failure(cli("import", str(doc)))
    assert_intact(cli)
    assert json.loads(cli("snapshots", "ls", "--json").out) == []
    assert cli("import", str(doc)).code == 0


@pytest.mark.parametrize(
    ("fault", "text"),
    [
        (database(0), "y" * 200_000),  # the user message itself is not saved
        (database(6), "count"),  # the user message is; the step with its long tool result is not
        (git_objects, "count"),  # the commit after the step
    ],
    ids=["database-message", "database-step", "git-objects"],
)
def test_send(cli, instance: str, script: str, monkeypatch: pytest.MonkeyPatch, fault: Fault, text: str) -> None:  # type: ignore[no-untyped-def]
    before = cli("export", instance).out
    with monkeypatch.context() as patch:
        fault(patch)
        assert_clear_failure(cli("send", instance, text, "-q", "--model", script))
    assert_intact(cli)
    assert cli("export", instance).out.startswith(before)  # nothing that was stored is lost

    again = cli("send", instance, "once more", "-q", "--model", "replay:")
    assert again.code == 0, again
    exported = cli("export", instance).out
    assert exported.startswith(before) and "You said: once more" in exported
    assert cli("exec", instance, "--", "cat kept.txt").out == "kept\n"
    assert_intact(cli)


@pytest.mark.parametrize(
    ("fault", "ran"),
    [
        (git_objects, True),  # the command ran; its commit failed, and the next one takes its change
        (resource_state, False),  # the tool could not mark the resource as changing, so nothing ran
    ],
    ids=["git-objects", "resource-state"],
)
def test_exec_and_run(
    cli, instance: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: Fault, ran: bool
) -> None:  # type: ignore[no-untyped-def]
    with monkeypatch.context() as patch:
        fault(patch)
        assert_clear_failure(cli("exec", instance, "--", "echo more > more.txt"))
        assert_clear_failure(cli("run", str(tmp_path / "doc.md"), "-q"))
    assert_intact(cli)
    assert len(json.loads(cli("instances", "ls", "--json").out)) == 1  # the failed run left no instance
    assert cli("exec", instance, "--", "ls").out.split() == (["kept.txt", "more.txt"] if ran else ["kept.txt"])
    assert json.loads(cli("log", instance, "--json").out)[-1]["workspace_version"]


# -- a real full disk ---------------------------------------------------------------

SCRIPT_PATH = Path(sys.executable).parent / "domarkx"
DOMARKX = str(SCRIPT_PATH) if SCRIPT_PATH.exists() else (shutil.which("domarkx") or "domarkx")


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 16 MB tmpfs as DOMARKX_HOME (needs root and a kernel that lets us mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small disk needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        monkeypatch.setenv("DOMARKX_HOME", str(mount / "home"))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def real(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOMARKX, *args], input=stdin, capture_output=True, text=True, timeout=120, check=False)


def fill(disk: Path, room: int) -> Path:
    """Write until the disk refuses, then give back ``room`` bytes; return the file to delete."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh, pytest.raises(OSError, match="No space left"):
        write_forever(fh)
    os.truncate(filler, filler.stat().st_size - room)
    return filler


def write_forever(fh: Any) -> None:
    while True:
        fh.write(b"\0" * (1 << 16))


@pytest.mark.parametrize("room", [0, 256 << 10], ids=["no-room", "some-room"])
def test_a_real_full_disk(small_disk: Path, tmp_path: Path, script: str, room: int) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    made = real("run", str(doc), "-q")
    assert made.returncode == 0, made.stderr
    instance = made.stdout.strip()
    big = tmp_path / "big.md"
    big.write_text(DOC.replace("make a file", "z" * 400_000))

    filler = fill(small_disk, room)
    for args, stdin in (
        (["import", str(big)], None),
        (["send", instance, "-", "-q", "--model", script], "y" * 400_000),
        (["exec", instance, "--", "seq 1 100000 > numbers.txt"], None),
    ):
        failed = real(*args, stdin=stdin)
        assert failed.returncode != 0, args
        assert "disk is full" in failed.stderr or "No space left on device" in failed.stderr, failed.stderr
        assert "internal error" not in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
    filler.unlink()

    report = json.loads(real("doctor", "--repair", "--json").stdout)
    assert report["ok"] and report["problems"] == [], report
    assert real("send", instance, "after the disk was freed", "-q", "--model", "replay:").returncode == 0
    exported = real("export", instance).stdout
    assert "echo kept > kept.txt" in exported and "You said: after the disk was freed" in exported
    assert real("exec", instance, "--", "cat kept.txt").stdout == "kept\n"
    assert real("import", str(big)).returncode == 0
    final = json.loads(real("doctor", "--json").stdout)
    assert final["ok"] and final["leftovers"] == [], final
