"""`domarkx instances ls|inspect|stop|start|rm`, readable names, references, `run --rm`: through the real CLI."""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from domarkx.data.autonames import ADJECTIVES, NOUNS
from domarkx.data.instances import lock_name
from domarkx.data.locks import held
from domarkx.data.names import validate_instance_name
from domarkx.data.store import Store

Cli = Callable[..., Any]

DOC = """\
---
title: listing
---

## user

> Say hi.

## assistant

```bash
echo hi
```
"""


def write(tmp_path: Path, text: str, name: str = "doc.md") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_ok(cli: Cli, *args: str) -> str:
    result = cli("run", *args, "-q")
    assert result.code == 0, result
    return str(result.out.split()[-1])


def listed(cli: Cli, *args: str) -> list[dict[str, Any]]:
    result = cli("instances", "ls", "--json", *args)
    assert result.code == 0, result
    rows: list[dict[str, Any]] = json.loads(result.out)
    return rows


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    return write(tmp_path, DOC)


# -- names ----------------------------------------------------------------------------------------


def test_an_instance_nobody_named_gets_a_readable_name(cli: Cli, doc: Path) -> None:
    first = run_ok(cli, str(doc))
    second = run_ok(cli, str(doc))

    names = {row["id"]: row["name"] for row in listed(cli)}
    assert len(set(names.values())) == 2
    for name in names.values():
        adjective, noun = name.split("_")
        assert adjective in ADJECTIVES and noun in NOUNS
        validate_instance_name(name)  # the name rule: it can never be taken for an id
    assert cli("log", names[first]).code == 0  # usable wherever an id is
    fork = cli("fork", names[second], "--at", "1", "--json")
    assert json.loads(fork.out)["name"] not in names.values()


def test_every_name_taken_still_gives_a_free_one(domarkx_home: Path) -> None:
    from domarkx.data.autonames import unused_name

    store = Store(domarkx_home)  # creates the schema
    taken = [f"{a}_{n}" for a in ADJECTIVES for n in NOUNS]
    raw = sqlite3.connect(domarkx_home / "store.db")
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.executemany(
        "INSERT INTO instances(id, name, snapshot_id, workspace_id, status, created) VALUES (?, ?, 's', 'w', 'x', 0)",
        [(f"{i:064x}", name) for i, name in enumerate(taken)],
    )
    raw.commit()
    raw.close()

    name = unused_name(store)

    assert name not in taken
    assert re.fullmatch(r"[a-z]+_[a-z]+_\d+", name)
    validate_instance_name(name)


# -- ls: a truthful status, the snapshot's tag and title, the parent, filters ------------------------


HOLD = """
import sys
from domarkx.data.store import Store
from domarkx.data.instances import lock_name
from domarkx.data.locks import held
with Store() as store, store.hold(lock_name(sys.argv[1])) as free:
    print("held" if free else "busy", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def holder(domarkx_home: Path) -> Iterator[Callable[[str], None]]:
    """Hold an instance's lock in another process, as a running `send` does, until the test ends."""
    started: list[subprocess.Popen[str]] = []

    def hold(instance_id: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, instance_id], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"

    yield hold
    for proc in started:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(30)
        proc.stdout.close()


def test_status_is_ready_busy_or_stopped(cli: Cli, doc: Path, holder: Callable[[str], None]) -> None:
    idle = run_ok(cli, str(doc), "--name", "idle")
    worked = run_ok(cli, str(doc), "--name", "worked")
    run_ok(cli, str(doc), "--name", "parked")
    assert cli("instances", "stop", "parked").code == 0

    holder(worked)

    states = {row["name"]: row["status"] for row in listed(cli)}
    assert states == {"idle": "ready", "worked": "busy", "parked": "stopped"}
    table = cli("instances", "ls").out
    assert re.search(r"^\S+\s+worked\s.*\sbusy\s", table, re.MULTILINE), table
    assert "running" not in table
    # listing did not take the lock: the holder still has it, and the idle one is free for a command
    assert cli("exec", "worked", "--", "true").code == 1
    assert cli("exec", idle, "--", "true").code == 0
    assert [r["name"] for r in listed(cli, "--filter", "status=busy")] == ["worked"]


def test_ls_shows_tag_title_and_parent_and_filters(cli: Cli, doc: Path) -> None:
    assert cli("import", str(doc), "-t", "demo").code == 0
    base = run_ok(cli, "demo", "--name", "base")
    assert cli("fork", "base", "--at", "1", "--name", "branch", "-q").code == 0

    table = cli("instances", "ls").out.splitlines()
    assert table[0].split() == ["ID", "NAME", "SNAPSHOT", "TITLE", "PARENT", "STATUS", "MESSAGES", "CREATED"]
    branch = next(line for line in table if " branch " in line)
    assert branch.split()[1:5] == ["branch", "demo", "listing", "base@1"]

    assert [r["name"] for r in listed(cli, "--filter", "parent=base")] == ["branch"]
    assert [r["name"] for r in listed(cli, "-f", "name=ran", "-f", "snapshot=demo")] == ["branch"]
    assert [r["name"] for r in listed(cli, "-n", "1")] == ["branch"]
    assert cli("instances", "ls", "-q", "-n", "1").out.split() == [listed(cli)[0]["id"]]
    row = next(r for r in listed(cli) if r["id"] == base)
    assert (row["snapshot_tags"], row["title"], row["status"]) == (["demo"], "listing", "ready")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", "stats=ready"], r"error: unknown filter 'stats' \(did you mean 'status'\?\)"),
        (["--filter", "status=running"], r"error: unknown status 'running'"),
        (["--filter", "status"], r"error: --filter expects KEY=VALUE, got 'status'"),
        (["--filter", "snapshot=nosuch"], r"error: no snapshot named 'nosuch'"),
        (["-n", "0"], r"error: invalid value for '-n' / '--last': 0 is not in the range x>=1"),
    ],
)
def test_bad_filters_are_usage_errors(cli: Cli, doc: Path, args: list[str], message: str) -> None:
    run_ok(cli, str(doc))

    result = cli("instances", "ls", *args)

    assert result.code == 2
    first, *hints = result.err.splitlines()
    assert re.fullmatch(message, first), first
    assert hints and all(h.startswith("  hint: ") for h in hints)


def test_a_strangers_title_cannot_flood_or_repaint_the_terminal(cli: Cli, tmp_path: Path) -> None:
    title = "\\e[2J\\e]0;owned\\a" + "A" * 1_000_000 + "\\nforged line"
    hostile = write(tmp_path, f'---\ntitle: "{title}"\n---\n\n## user\n\n> hi\n', "hostile.md")
    run_ok(cli, str(hostile), "--name", "hostile")

    for args in (["instances", "ls"], ["instances", "inspect", "hostile"], ["snapshots", "ls"]):
        result = cli(*args)
        assert result.code == 0, result
        assert "\x1b" not in result.out and "\x07" not in result.out
        assert all(len(line) < 400 for line in result.out.splitlines()), args
        assert "forged line" not in result.out
    assert "\\x1b[2J" in cli("instances", "ls").out
    assert json.loads(cli("instances", "inspect", "hostile", "--json").out)["title"].startswith("\x1b[2J")


# -- inspect ------------------------------------------------------------------------------------------


def test_inspect_shows_created_model_parent_and_work_dirs(cli: Cli, doc: Path) -> None:
    run_ok(cli, str(doc), "--name", "base", "--model", "replay:")
    assert cli("fork", "base", "--at", "1", "--name", "branch", "-q").code == 0

    data = json.loads(cli("instances", "inspect", "branch", "--json").out)
    assert (data["model"], data["parent_name"], data["parent_at"]) == ("replay:", "base", 1)
    (resource,) = data["resources"]
    assert resource["type"] == "local_shell" and Path(resource["location"]).is_dir()

    text = cli("instances", "inspect", "branch").out
    lines = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    assert lines["model"].strip() == "replay:"
    assert lines["parent"].strip().startswith("base at message 1 (")
    assert re.fullmatch(r"\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d \(just now\)", lines["created"])
    assert f"local_shell (local_shell) at {resource['location']}" in text
    assert lines["status"].strip() == "ready"


# -- references -------------------------------------------------------------------------------------


def test_ambiguous_ids_list_candidates_that_tell_them_apart(cli: Cli, doc: Path, domarkx_home: Path) -> None:
    run_ok(cli, str(doc), "--name", "seed")
    store = Store(domarkx_home)
    seed = store.instances.row(store.instances.resolve("seed"))
    twins = ["0123456789abcd" + c * 50 for c in "ef"]
    for twin in twins:
        store.instances.insert(seed._replace(id=twin, name=None), [])

    result = cli("log", "0123")

    assert result.code == 2
    assert result.err.splitlines()[0] == (
        "error: '0123' matches more than one instance: 0123456789abcde, 0123456789abcdf"
    )
    assert cli("log", "0123456789abcde").code == 0


def test_a_prefix_says_which_kind_a_reference_means(cli: Cli, doc: Path) -> None:
    assert cli("import", str(doc), "-t", "same").code == 0
    run_ok(cli, "same", "--name", "same")

    both = cli("export", "same")
    assert both.code == 2
    assert both.err.splitlines() == [
        "error: 'same' names both an instance and a snapshot",
        "  hint: say which: instance:same or snapshot:same",
    ]
    assert cli("export", "snapshot:same").out == DOC
    instance = cli("export", "instance:same").out
    assert instance != DOC and "text output" in instance
    assert cli("log", "instance:same").code == 0
    assert cli("snapshots", "inspect", "snapshot:same").code == 0


# -- run --rm, stop/start/rm ----------------------------------------------------------------------


def test_run_rm_prints_the_outputs_and_keeps_nothing(cli: Cli, doc: Path) -> None:
    result = cli("run", "--rm", str(doc))

    assert result.code == 0, result
    # the block's output under its header, and no id of an instance that is gone
    assert result.out == "── message 1 · bash ──\nhi\n"
    assert "is ready" not in result.err
    assert listed(cli, "-a") == []


def test_stop_start_rm_with_quiet_ids(cli: Cli, doc: Path) -> None:
    instance_id = run_ok(cli, str(doc), "--name", "cycle")

    assert cli("instances", "stop", "-q", "cycle").out == f"{instance_id}\n"
    assert cli("instances", "start", "cycle").out == "cycle\n"
    refused = cli("instances", "rm", "cycle")
    assert refused.code == 2 and "is running" in refused.err
    assert cli("instances", "rm", "-f", "-q", "cycle").out == f"{instance_id}\n"
    assert listed(cli) == []


def test_the_lock_a_listing_peeks_at_is_the_one_commands_take(domarkx_home: Path) -> None:
    """`ls` peeks at the very file `Store.hold` locks: a rename of either would make every instance ready."""
    store = Store(domarkx_home)
    with store.hold(lock_name("x" * 64)) as free:
        assert free
        assert held(domarkx_home / "locks", [lock_name("x" * 64), lock_name("y" * 64)]) == {lock_name("x" * 64)}
    assert held(domarkx_home / "locks", [lock_name("x" * 64)]) == set()


def test_a_peek_never_makes_a_command_find_its_instance_busy(domarkx_home: Path) -> None:
    """A process taking the lock while `ls` peeks (shared, for an instant) still gets it."""
    store = Store(domarkx_home)
    name = lock_name("z" * 64)
    with store.hold(name):
        pass  # the lock file exists now, as for any instance used once
    peek = os.open(domarkx_home / "locks" / name, os.O_RDONLY)
    fcntl.flock(peek, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a peek caught in the middle
    threading.Timer(0.005, os.close, [peek]).start()

    with store.hold(name) as free:
        assert free


def test_a_lock_another_process_keeps_is_busy_after_the_retries(
    domarkx_home: Path, holder: Callable[[str], None]
) -> None:
    store = Store(domarkx_home)
    holder("w" * 64)

    with store.hold(lock_name("w" * 64)) as free:
        assert not free
