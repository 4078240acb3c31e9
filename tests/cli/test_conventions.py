"""What every command does alike: help with an example, one-line usage errors, colours, file modes.

Through the real entry point (the ``cli`` fixture in-process; a pseudo-terminal
and the installed script where a terminal is the point).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from terminal import on_a_terminal, script

from domarkx.cli import COMMANDS
from domarkx.cli import cli as root

Cli = Callable[..., Any]


def command_paths() -> Iterator[list[str]]:
    """Every command and subcommand, as the words a user types."""
    ctx = click.Context(root)
    for name in COMMANDS:
        command = root.get_command(ctx, name)
        assert command is not None, name
        yield [name]
        if isinstance(command, click.Group):
            for sub in command.list_commands(ctx):
                yield [name, sub]


ALL = list(command_paths())


@pytest.mark.parametrize("words", ALL, ids=" ".join)
def test_every_command_has_help_with_an_example(cli: Cli, words: list[str]) -> None:
    result = cli(*words, "--help")

    assert result.code == 0, result
    assert result.out.startswith(f"Usage: domarkx {' '.join(words)}"), result.out[:80]
    ctx = click.Context(root)
    command = root.get_command(ctx, words[0])
    if isinstance(command, click.Group) and len(words) == 1:
        return  # a group's help lists its commands; each of those shows an example
    assert re.search(r"^\s*Examples?:\n\s+domarkx ", result.out, re.MULTILINE), f"no example in {words}"
    assert cli(*words, "-h").out == result.out


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (["frobnicate"], "error: no such command 'frobnicate'", "domarkx --help"),
        (["instance", "ls"], "error: no such command 'instance' (did you mean 'instances'?)", "domarkx --help"),
        (["log"], "error: missing argument 'INSTANCE'", "domarkx log --help"),
        (["instances", "ls", "--quite"], "error: no such option '--quite' (did you mean '--quiet'?)", None),
        (["fork", "x", "--at", "four"], "error: invalid value for '--at': 'four' is not a valid integer", None),
        (["import", "--frobnicate", "x.md"], "error: no such option '--frobnicate'", "domarkx import --help"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_usage_errors_are_one_line_and_a_hint(cli: Cli, args: list[str], message: str, hint: str | None) -> None:
    result = cli(*args)

    assert result.code == 2
    lines = result.err.splitlines()
    assert lines[0] == message
    command = hint or f"domarkx {' '.join(w for w in args if not w.startswith('-') and w not in ('x', 'four'))}"
    assert lines[1:] == [f"  hint: see `{command}`" if hint else f"  hint: see `{command} --help`"]
    assert "Usage:" not in result.err and "Error:" not in result.err


def test_what_was_typed_is_quoted_harmlessly(cli: Cli) -> None:
    for args in (["frob\x1b[2J\nnicate"], ["log", "--\x1b]0;x\x07"], ["fork", "x", "--at", "\x1b[31m"]):
        result = cli(*args)
        assert result.code == 2
        assert "\x1b" not in result.err and "\x07" not in result.err
        assert len(result.err.splitlines()) == 2, result.err


def test_no_arguments_prints_the_help(cli: Cli) -> None:
    for args in ([], ["instances"]):
        result = cli(*args)
        assert (result.code, result.err) == (0, "")
        assert result.out.startswith("Usage: domarkx")


def test_the_console_script_translates_usage_errors_too() -> None:
    done = subprocess.run([script(), "snapshots", "ls", "--nope"], capture_output=True, text=True, check=False)

    assert done.returncode == 2
    assert done.stderr == "error: no such option '--nope'\n  hint: see `domarkx snapshots ls --help`\n"


# -- colours: only on a terminal, never with NO_COLOR or --no-color ---------------------------

PENDING = "---\ntitle: colours\n---\n\n## user\n\n> hello?\n"


@pytest.fixture
def pending_instance(cli: Cli, tmp_path: Path) -> str:
    doc = tmp_path / "ask.md"
    doc.write_text(PENDING)
    result = cli("run", str(doc), "--name", "colours", "-q")
    assert result.code == 0, result
    return "colours"


def test_colours_on_a_terminal_unless_told_not_to(pending_instance: str, domarkx_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"DOMARKX_HOME": str(domarkx_home)}

    assert b"\x1b[" in on_a_terminal(["log", pending_instance], env)
    assert b"\x1b[" not in on_a_terminal(["log", pending_instance], env | {"NO_COLOR": "1"})
    for args in (["--no-color", "log", pending_instance], ["log", pending_instance, "--no-color"]):
        plain = on_a_terminal(args, env)
        assert b"\x1b[" not in plain and b"not answered yet" in plain


def test_no_colours_into_a_pipe(cli: Cli, pending_instance: str) -> None:
    done = subprocess.run([script(), "log", pending_instance], capture_output=True, check=False)

    assert done.returncode == 0
    assert b"not answered yet" in done.stderr and b"\x1b" not in done.stderr + done.stdout


# -- files written with -o --------------------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_written_files_get_the_usual_mode(cli: Cli, tmp_path: Path, umask_022: None) -> None:
    new = tmp_path / "talk.md"
    assert cli("new", "chat", "-o", str(new)).code == 0
    assert new.stat().st_mode & 0o777 == 0o644

    exported = tmp_path / "out.md"
    assert cli("export", "colours", "-o", str(exported)).code == 2  # nothing named so yet: nothing written
    assert not exported.exists()
    assert cli("import", str(new), "-t", "talk").code == 0
    assert cli("export", "talk", "-o", str(exported)).code == 0
    assert exported.stat().st_mode & 0o777 == 0o644

    exported.chmod(0o600)  # a file the user made private stays private when it is replaced
    assert cli("export", "talk", "-o", str(exported)).code == 0
    assert exported.stat().st_mode & 0o777 == 0o600


def test_new_points_at_run_with_a_model(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "my talk.md"
    result = cli("new", "chat", "-o", str(target))

    assert result.code == 0
    assert f"next: domarkx run '{target}' --model PROVIDER:MODEL" in result.err
    assert "domarkx import" not in result.err


# -- long work says what it is doing ----------------------------------------------------------


def test_a_large_import_and_export_show_progress_on_stderr(cli: Cli, tmp_path: Path) -> None:
    body = "".join(
        f"## user\n\n> question {i} " + "words " * 40 + f"\n\n## assistant\n\n> answer {i}\n\n" for i in range(4000)
    )
    doc = tmp_path / "big.md"
    doc.write_text("---\ntitle: big\n---\n\n" + body)

    result = cli("import", str(doc), "-t", "big")

    assert result.code == 0, result
    assert result.err.splitlines()[:2] == [f"· parsing {doc} (1.2MB)", "· storing 8000 messages"]
    quiet = cli("import", str(doc), "-q")
    assert quiet.err == ""
    exported = cli("export", "big", "-o", str(tmp_path / "again.md"))
    assert exported.err == f"· writing 1.2MB to {tmp_path / 'again.md'}\n"
    assert cli("import", str(tmp_path / "small.md")).err.startswith("error: no such file")


def test_commands_that_print_an_id_take_q(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("## user\n\n> hi\n")
    snapshot_id = cli("import", str(doc), "-q").out.strip()

    assert cli("snapshots", "tag", "-q", snapshot_id[7:15], "demo").out == f"{snapshot_id}\n"
    assert cli("snapshots", "rm", "-q", "demo").out == f"{snapshot_id}\n"
