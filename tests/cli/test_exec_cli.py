"""`domarkx exec`: code in every resource that runs code, recorded as an event `log`, `fork` and `prune` know.

Through the real entry point (in-process, and the installed script for standard input).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domarkx.data.events import blob_owner
from domarkx.data.store import Store

Cli = Callable[..., Any]

DOC = """\
---
title: exec
---

```workspace-config
resources:
  - type: local_shell
    name: sh
  - type: sqlite
    name: db
    setup: "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
```

## user

> Start a file.

## assistant

```bash
echo one > notes.txt
```
"""


@pytest.fixture
def made(cli: Cli, tmp_path: Path) -> str:
    doc = tmp_path / "exec.md"
    doc.write_text(DOC)
    result = cli("run", str(doc), "--name", "box", "-q")
    assert result.code == 0, result
    return "box"


def log_json(cli: Cli, ref: str) -> list[dict[str, Any]]:
    result = cli("log", ref, "--json")
    assert result.code == 0, result
    rows: list[dict[str, Any]] = json.loads(result.out)
    return rows


def head(cli: Cli, ref: str) -> str:
    return str(json.loads(cli("instances", "inspect", ref, "--json").out)["head_version"])


# -- commands in the shell -------------------------------------------------------------------------


def test_a_command_passes_output_and_exit_code_through_and_is_recorded(cli: Cli, made: str) -> None:
    before = head(cli, made)

    result = cli("exec", made, "--", "sh", "-c", "echo two >> notes.txt; echo oops >&2; exit 3")

    assert result.code == 3
    assert result.out == ""
    assert result.err.startswith("oops\n")
    assert "is the new head" in result.err
    event = log_json(cli, made)[-1]
    assert event["role"] == "exec" and event["after"] == 1 and event["resource"] == "sh"
    assert event["detail"]["code"] == "sh -c 'echo two >> notes.txt; echo oops >&2; exit 3'"
    assert event["detail"]["exit_code"] == 3
    assert event["previous_version"] == before
    assert event["workspace_version"] == head(cli, made) != before
    table = cli("log", made).out.splitlines()
    assert table[-1].split()[:3] == ["·", "exec", event["workspace_version"][7:19]]
    assert table[-1].endswith("(exit 3)")
    assert cli("exec", made, "--", "cat notes.txt").out == "one\ntwo\n"


def test_a_command_that_changes_nothing_leaves_no_trace(cli: Cli, made: str) -> None:
    before = head(cli, made)

    result = cli("exec", made, "--json", "--", "ls")

    assert result.code == 0
    data = json.loads(result.out)
    assert data["output"]["stdout"] == "notes.txt\n" and data["exit_code"] == 0
    assert (data["moved"], data["workspace_version"]) == (False, before)
    assert [e for e in log_json(cli, made) if e["role"] == "exec"] == []
    assert "new head" not in cli("exec", made, "--", "cat notes.txt").err


def test_a_timed_out_command_exits_124(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "slow.md"
    doc.write_text('```session-config\n{"timeout": 1}\n```\n\n## user\n\n> wait\n')
    assert cli("run", str(doc), "--name", "slow", "-q").code == 0

    result = cli("exec", "slow", "--", "sleep 30")

    assert result.code == 124
    assert cli("exec", "slow", "--", "touch late; sleep 30").code == 124
    assert "(timed out)" in cli("log", "slow").out  # it changed the workspace before it was killed


# -- code in other resources ------------------------------------------------------------------------


def test_sql_in_sqlite(cli: Cli, made: str) -> None:
    assert cli("exec", made, "-r", "db", "--", "INSERT INTO notes(body) VALUES ('a'), ('b')").code == 0

    words = cli("exec", made, "--resource", "db", "--", "SELECT", "count(*)", "AS", "n", "FROM", "notes")
    assert words.code == 0
    assert words.out.splitlines()[0].strip() == "n" and "2" in words.out

    bad = cli("exec", made, "-r", "db", "--", "SELEKT 1")
    assert bad.code == 1
    assert "syntax error" in bad.err
    recorded = [e["detail"]["code"] for e in log_json(cli, made) if e["role"] == "exec"]
    assert recorded == ["INSERT INTO notes(body) VALUES ('a'), ('b')"]  # the reads and the failure changed nothing


def test_python_in_a_kernel(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "py.md"
    doc.write_text("```workspace-config\nresources:\n  - type: python\n    name: py\n```\n\n## user\n\n> hi\n")
    assert cli("run", str(doc), "--name", "kernel", "-q").code == 0

    shown = cli("exec", "kernel", "--", "x = 6 * 7; print('x is', x); x")  # the only resource: no --resource
    assert (shown.code, shown.out) == (0, "x is 42\n42\n")
    raised = cli("exec", "kernel", "--", "1 / 0")
    assert raised.code == 1
    assert "ZeroDivisionError" in raised.err and raised.out == ""
    assert "(exit 1)" in cli("log", "kernel").out


def test_without_a_shell_several_code_resources_need_a_name(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "two.md"
    doc.write_text(
        "```workspace-config\nresources:\n  - type: sqlite\n    name: a\n  - type: sqlite\n    name: b\n```\n"
    )
    assert cli("run", str(doc), "--name", "pair", "-q").code == 0

    result = cli("exec", "pair", "--", "SELECT 1")

    assert result.code == 2
    assert result.err.splitlines() == [
        "error: which resource? this instance has no shell to run commands in",
        "  hint: name one with --resource: a (sqlite), b (sqlite)",
    ]
    assert cli("exec", "pair", "-r", "b", "--", "SELECT 1").code == 0


def test_a_resource_that_runs_no_code_and_an_unknown_one(cli: Cli, made: str) -> None:
    unknown = cli("exec", made, "-r", "nope", "--", "ls")
    assert unknown.code == 2
    assert unknown.err.splitlines() == [
        "error: no resource named 'nope'",
        "  hint: resources: sh (local_shell), db (sqlite)",
    ]
    assert [e for e in log_json(cli, made) if e["role"] == "exec"] == []


# -- standard input -------------------------------------------------------------------------------


def piped(args: list[str], data: bytes, home: Path) -> subprocess.CompletedProcess[bytes]:
    """The installed script with ``data`` on its standard input, as a shell pipe gives it (the code under test)."""
    beside = Path(sys.executable).parent / "domarkx"
    env = {"DOMARKX_HOME": str(home), "PATH": "/usr/bin:/bin"}
    if "PYTHONPATH" in os.environ:  # a checkout other than the installed one
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return subprocess.run([str(beside), *args], input=data, capture_output=True, env=env, check=False)


def test_standard_input_is_the_code_when_no_command_is_given(made: str, domarkx_home: Path, cli: Cli) -> None:
    done = piped(["exec", made, "-r", "db", "-i"], b"INSERT INTO notes(body) VALUES ('piped');\n", domarkx_home)

    assert done.returncode == 0, done.stderr
    assert "'piped'" in log_json(cli, made)[-1]["detail"]["code"]
    assert "piped" in cli("exec", made, "-r", "db", "--", "SELECT body FROM notes").out


def test_binary_standard_input(made: str, domarkx_home: Path, cli: Cli) -> None:
    binary = bytes(range(256)) * 4

    as_code = piped(["exec", made, "-r", "db", "-i"], binary, domarkx_home)
    assert as_code.returncode == 2
    assert as_code.stderr.decode().splitlines()[0] == (
        "error: the code on standard input is not UTF-8 text (byte 0x80 at offset 128)"
    )
    to_sql = piped(["exec", made, "-r", "db", "-i", "--", "SELECT 1"], binary, domarkx_home)
    assert to_sql.returncode == 2
    assert to_sql.stderr.decode().splitlines() == [
        "error: db (sqlite) takes no standard input",
        "  hint: drop -i, or give the data as a file (`domarkx cp`)",
    ]
    assert [e for e in log_json(cli, made) if e["role"] == "exec"] == []  # nothing ran, nothing recorded


def test_standard_input_reaches_a_shell_command_and_is_kept_with_its_event(
    made: str, domarkx_home: Path, cli: Cli
) -> None:
    binary = bytes(range(256)) * 4

    counted = piped(["exec", made, "-i", "--", "wc", "-c"], binary, domarkx_home)
    kept = piped(["exec", made, "-i", "--", "sh", "-c", "tee in.bin | wc -c"], binary, domarkx_home)

    assert (counted.returncode, counted.stdout) == (0, b"1024\n"), counted.stderr
    assert (kept.returncode, kept.stdout) == (0, b"1024\n"), kept.stderr
    events = [e for e in log_json(cli, made) if e["role"] == "exec"]
    assert [e["detail"]["code"] for e in events] == ["sh -c 'tee in.bin | wc -c'"]  # wc alone changed nothing
    assert Store(domarkx_home).get_blob(events[0]["detail"]["stdin"]) == binary
    assert cli("log", made).out.splitlines()[-1].endswith("[sh] sh -c 'tee in.bin | wc -c' < 1024 bytes")
    copied = domarkx_home.parent / "in.bin"
    assert cli("cp", f"{made}:in.bin", str(copied)).code == 0
    assert copied.read_bytes() == binary


def test_no_command_and_no_input_is_a_usage_error(cli: Cli, made: str) -> None:
    result = cli("exec", made)

    assert result.code == 2
    assert result.err.startswith("error: what should run? give CMD after --\n")


def test_a_stopped_instance_runs_nothing(cli: Cli, made: str) -> None:
    assert cli("instances", "stop", made).code == 0

    result = cli("exec", made, "--", "touch x")

    assert result.code == 2
    assert result.err.splitlines()[0] == "error: the instance is stopped"


# -- the record: fork, prune, rm -------------------------------------------------------------------


def test_a_fork_at_the_exec_starts_from_it_and_one_before_does_not(cli: Cli, made: str) -> None:
    assert cli("exec", made, "--", "echo two >> notes.txt").code == 0
    assert cli("send", made, "a question", "--model", "replay:").code in (0, 1, 2)  # a later message, however it ends

    after = cli("fork", made, "--at", "1", "--name", "after", "-q")
    before = cli("fork", made, "--at", "0", "--name", "before", "-q")

    assert after.code == 0 and before.code == 0
    assert cli("exec", "after", "--", "cat notes.txt").out == "one\ntwo\n"
    assert cli("exec", "before", "--", "cat notes.txt").code == 1  # made before the assistant wrote it
    assert [e["detail"]["code"] for e in log_json(cli, "after") if e["role"] == "exec"][:1] == ["echo two >> notes.txt"]


def test_prune_keeps_what_an_exec_left(cli: Cli, made: str, domarkx_home: Path) -> None:
    assert cli("exec", made, "--", "echo two >> notes.txt").code == 0
    first = head(cli, made)
    assert cli("exec", made, "--", "echo three >> notes.txt").code == 0

    assert cli("prune").code == 0

    assert Store(domarkx_home).versions.exists(first)  # no message links it and it is not the head: its event does
    assert cli("doctor").code == 0


def test_standard_input_is_kept_with_its_event_until_the_instance_goes(cli: Cli, made: str, domarkx_home: Path) -> None:
    """Input a command read is kept, so the record says exactly what ran (for a plugin that takes stdin)."""
    store = Store(domarkx_home)
    instance_id = store.instances.resolve(made)
    version = head(cli, made)
    event = store.events.record(
        instance_id, messages=2, kind="exec", resource="sh", detail={"code": "wc -c"}, before=version,
        version=version, stdin=b"\x00\xff binary",
    )  # fmt: skip
    assert store.get_blob(event.detail["stdin"]) == b"\x00\xff binary"
    assert cli("log", made).out.splitlines()[-1].endswith("[sh] wc -c < 9 bytes")
    assert cli("fork", made, "--at", "1", "--name", "heir", "-q").code == 0
    assert store.owned(blob_owner(store.instances.resolve("heir"))) == {event.detail["stdin"]}

    assert cli("instances", "rm", "-f", made).code == 0
    assert cli("prune").code == 0
    assert store.blob_path(event.detail["stdin"]).exists()  # the fork still needs it
    assert cli("instances", "rm", "-f", "heir").code == 0
    assert cli("prune").code == 0
    assert not store.blob_path(event.detail["stdin"]).exists()


def test_what_a_stranger_typed_is_escaped_in_the_log(cli: Cli, made: str) -> None:
    assert cli("exec", made, "--", "printf 'x\nforged' > f # \x1b[2J").code == 0

    line = cli("log", made).out.splitlines()[-1]
    assert "\x1b" not in line and "\\x1b[2J" in line


def test_on_a_terminal_a_command_streams_and_is_shown_once(made: str, domarkx_home: Path) -> None:
    from terminal import on_a_terminal

    env = {"DOMARKX_HOME": str(domarkx_home), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}

    shown = on_a_terminal(["exec", made, "--", "echo first; echo second >&2; exit 4"], env, expect=4)

    text = shown.decode().replace("\r\n", "\n")
    assert text.count("first\n") == 1 and text.count("second\n") == 1
    assert text.index("first") < text.index("second")
