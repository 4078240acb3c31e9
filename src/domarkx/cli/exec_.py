"""``domarkx exec``: run code in one of an instance's resources (like ``docker exec``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from domarkx import ids
from domarkx.cli._common import emit_json, json_option
from domarkx.errors import UsageError

if TYPE_CHECKING:
    from domarkx.session.outofband import Executed

TIMED_OUT = 124
"""The exit code of a command killed at its time-out (as ``timeout(1)`` says)."""


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("ref", metavar="INSTANCE")
@click.option("-r", "--resource", metavar="NAME", help="The resource to run in (default: the one running shell code).")
@click.option(
    "-i",
    "--interactive",
    "read_stdin",
    is_flag=True,
    help="Pass standard input to CMD; with no CMD, standard input is the code to run.",
)
@click.option("-q", "--quiet", is_flag=True, help="Nothing on stderr but the code's own output and errors.")
@json_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD...]")
def exec_cmd(
    ref: str, resource: str | None, read_stdin: bool, quiet: bool, as_json: bool, command: tuple[str, ...]
) -> None:
    """Run CMD in the instance's workspace; its output and exit code are passed through.

    In the shell resource (local_shell, docker_sandbox) CMD is a command:
    several words are quoted and joined, a single argument is a whole command
    line (`-- 'make && ls > out.txt'`). In another resource (--resource), CMD
    is its code: Python source in a python kernel, SQL in sqlite. With -i,
    standard input goes to the command, or is the code itself when no CMD is
    given. A command killed at its time-out exits with 124.

    The change is committed at once and recorded: the instance's head moves
    to the new workspace version, `domarkx log` shows the exec between the
    messages, and a fork at that point starts from it (docs/sessions.md).

    \b
    Examples:
      domarkx exec try1 -- ls -la
      domarkx exec try1 -- 'pytest -q > report.txt'
      domarkx exec try1 --resource db -- 'SELECT count(*) FROM notes'
      domarkx exec try1 --resource py -i < analysis.py
    """
    from domarkx.cli._session import managers
    from domarkx.session.outofband import exec_code

    code, stdin = _code(command, _stdin() if read_stdin else None)
    manager, _ = managers()
    streamed: list[str] = []
    with manager.store, _live(streamed, on=not as_json and sys.stdout.isatty()):
        done = exec_code(manager, ref, code, resource=resource, stdin=stdin)
    exit_code = _show(done, as_json=as_json, quiet=quiet, streamed=bool(streamed))
    if exit_code:
        raise click.exceptions.Exit(exit_code)


@contextlib.contextmanager
def _live(streamed: list[str], *, on: bool) -> Iterator[None]:
    """On a terminal, a command's output as it comes (stdout and stderr as the plugin interleaves them)."""
    if not on:
        yield
        return
    from domarkx.workspace.plugin import streaming_to

    def show(chunk: str) -> None:
        streamed.append(chunk)
        click.echo(chunk, nl=False)

    with streaming_to(show):
        yield


def _stdin() -> bytes:
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("-i reads standard input, but it is a terminal", hint="pipe or redirect the input in")
    return sys.stdin.buffer.read()


def _code(command: tuple[str, ...], stdin: bytes | None) -> tuple[str | list[str], bytes | None]:
    """The code to run and the standard input left for it: CMD (a line, or words), or standard input as the code."""
    if not command:
        if stdin is None:
            raise UsageError("what should run? give CMD after --", hint="e.g. domarkx exec try1 -- ls, or -i < script")
        return _text(stdin), None
    return (command[0] if len(command) == 1 else list(command)), stdin


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"the code on standard input is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
            hint="give code as text; to pass bytes to a command, name the command: -i -- CMD",
        ) from exc


def _show(done: Executed, *, as_json: bool, quiet: bool, streamed: bool = False) -> int:
    """Print the code's output as it would have printed it (unless it streamed); the exit code to pass on."""
    outcome = done.outcome
    result = outcome.output
    command = isinstance(result, dict) and "exit_code" in result
    if command:
        exit_code = TIMED_OUT if result.get("timed_out") else int(result["exit_code"] or 0)
    else:
        exit_code = 0 if outcome.ok else 1
    if as_json:
        emit_json(
            {
                "ok": outcome.ok,
                "exit_code": exit_code,
                "output": result if command else outcome.text,
                "workspace_version": done.version,
                "moved": done.event is not None,
                "notes": done.notes,
            }
        )
        return exit_code
    if command:
        if not streamed:  # else it was shown while it ran
            click.echo(result.get("stdout") or "", nl=False)
            stderr = result.get("stderr") or ""
            click.echo(stderr, nl=bool(stderr) and not stderr.endswith("\n") and not quiet, err=True)
    else:
        click.echo(outcome.text, nl=not outcome.text.endswith("\n"), err=not outcome.ok)
    if not quiet:
        for note in done.notes:
            click.secho(f"· {note}", err=True, dim=True)
        if done.event is not None:
            moved = f"· workspace {ids.short(done.version)} is the new head (see `domarkx log`)"
            click.secho(moved, err=True, dim=True)
    return exit_code
