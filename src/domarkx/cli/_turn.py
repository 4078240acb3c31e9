"""Showing a turn as it happens, and the steps every command that talks to a model shares.

Streams are split so scripts can read stdout: the model's text goes to stdout
(with a newline between the texts of two steps), everything about tool calls,
their output and progress to stderr.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from domarkx.cli._session import label, progress
from domarkx.session._reply import printable
from domarkx.session.manager import INTERRUPTED, TurnObserver

if TYPE_CHECKING:
    from domarkx.data.models import ConversationMessage, SessionInstance, ToolCallRecord
    from domarkx.errors import ProviderError
    from domarkx.llm.base import Provider
    from domarkx.session.manager import SessionManager, TurnResult

RESULT_LINES = 6
"""Lines of a tool result shown without -v."""
CALL_WIDTH = 160
"""Characters of a call's arguments shown without -v."""


class Terminal(TurnObserver):
    """Shows a turn on the terminal (:class:`~domarkx.session.manager.TurnObserver`), asking before calls if told to."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, approve: bool = False, text: bool = True) -> None:
        self.quiet, self.verbose, self.asking, self.show_text = quiet, verbose, approve, text
        self.unanswered = False  # asked once and met the end of input
        self.column = 0  # where stdout's cursor is: 0 at the start of a line
        self.err_column = 0
        self.streamed = False

    # -- the observer methods -------------------------------------------------------------

    def step(self, number: int) -> None:
        if number > 1:
            self.end_text()  # two steps' texts never run together

    def text(self, delta: str) -> None:
        if not self.show_text or not delta:
            return
        click.echo(printable(delta), nl=False)
        self.column = 0 if delta.endswith("\n") else self.column + len(delta)

    def call(self, call: ToolCallRecord) -> None:
        self.end_text()
        self.streamed = False
        if not self.quiet:
            click.secho(f"→ {call.name}({self._arguments(call.arguments)})", err=True, fg="cyan")

    def approve(self, call: ToolCallRecord) -> bool:
        if not self.asking:
            return True
        if self.unanswered:
            click.secho("  declined: nobody to ask (end of input)", err=True, dim=True)
            return False
        answer = ask("  run it? [Y]es, [n]o, [a]lways (stop asking)", "yna")
        if answer is None:  # nobody to ask: refuse, the safe answer, this call and the next
            self.unanswered = True
            click.echo("n (end of input)", err=True)
        elif answer == "a":
            self.asking = False
        return answer in ("y", "a")

    def output(self, chunk: str) -> None:
        if self.quiet:
            return
        self.streamed = True
        lines = printable(chunk).split("\n")
        for index, line in enumerate(lines):
            if index:
                click.echo(err=True)
                self.err_column = 0
            if line:
                click.secho(("  │ " if self.err_column == 0 else "") + line, err=True, dim=True, nl=False)
                self.err_column += len(line)

    def result(self, call: ToolCallRecord, result: ConversationMessage) -> None:
        if self.quiet:
            return
        if self.err_column or (result.content.endswith(INTERRUPTED) and sys.stderr.isatty()):
            click.echo(err=True)  # also past the "^C" the terminal echoed
            self.err_column = 0
        lines = result.content.rstrip("\n").split("\n")
        if self.streamed:  # the output is on screen already: only how it ended
            ended = lines[-1]
            lines = [ended if ended.startswith("[") else ("done" if result.tool_ok else "failed")]
        shown = lines if self.verbose else lines[:RESULT_LINES]
        mark, colour = ("✓", "green") if result.tool_ok else ("✗", "red")
        first, *rest = shown or [""]
        click.secho(f"  {mark} {printable(first)}", err=True, fg=colour)
        for line in rest:
            click.secho(f"    {printable(line)}", err=True, dim=True)
        if len(lines) > len(shown):
            click.secho(f"    … {len(lines) - len(shown)} more lines (-v shows all)", err=True, dim=True)

    def notice(self, message: str) -> None:
        if not self.quiet:
            self.end_text()
            progress(message)

    # -- helpers ------------------------------------------------------------------------------

    def end_text(self) -> None:
        """End the line the model's text is on, so what follows starts on its own."""
        if self.column:
            click.echo()
            self.column = 0

    def _arguments(self, arguments: dict[str, Any]) -> str:
        shown = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())
        shown = printable(shown)
        if not self.verbose and len(shown) > CALL_WIDTH:
            shown = shown[: CALL_WIDTH - 1] + "…"
        return shown


def ask(question: str, choices: str) -> str | None:
    """One letter of ``choices`` from the person at the terminal (the first for an empty line); None at end of input."""
    while True:
        click.secho(f"{question} ", err=True, nl=False, bold=True)
        line = sys.stdin.readline()
        if not line:
            return None
        answer = line.strip().lower()[:1] or choices[0]
        if answer in choices:
            return answer


def run_turn(
    sessions: SessionManager,
    instance: SessionInstance,
    text: str | None,
    provider: Provider,
    *,
    max_steps: int,
    terminal: Terminal,
) -> TurnResult:
    """Send ``text`` (``None``: answer the pending conversation), showing the turn on ``terminal``."""
    from domarkx.llm._http import retry_notices
    from domarkx.workspace.plugin import progress_to

    notice = _silent if terminal.quiet else terminal.notice
    with retry_notices(notice), progress_to(notice), _signals_interrupt():
        try:
            if text is None:
                result = sessions.answer(instance, provider, max_steps=max_steps, observer=terminal)
            else:
                result = sessions.send(instance, text, provider, max_steps=max_steps, observer=terminal)
        finally:
            terminal.end_text()
    if result.hit_max_steps and not terminal.quiet:
        progress(f"stopped after --max-steps {max_steps}: `domarkx continue {label(instance)}` lets it go on")
    return result


def take_turn(
    sessions: SessionManager,
    instance: SessionInstance,
    text: str | None,
    *,
    model: str | None,
    approve: bool | None,
    max_steps: int | None,
    verbose: bool,
    quiet: bool,
    show_text: bool,
) -> TurnResult:
    """One turn as ``run``, ``send``, ``continue`` and ``edit`` take it: the settings for it remembered, the turn
    shown on the terminal, a failed model call leaving the message kept and saying how to go on."""
    from domarkx.errors import ProviderError

    provider, steps, asking = sessions.prepare(instance, model, approve, max_steps)
    terminal = Terminal(quiet=quiet, verbose=verbose, approve=asking, text=show_text)
    try:
        return run_turn(sessions, instance, text, provider, max_steps=steps, terminal=terminal)
    except ProviderError as exc:
        turn_failed(instance, exc)
        raise
    finally:
        provider.close()


def turn_failed(instance: SessionInstance, exc: ProviderError) -> None:
    """Tell the person their message is kept and how to get it answered (after a failed model call)."""
    line = f"your message is kept, not answered yet: `domarkx continue {label(instance)}` answers it"
    exc.hint = f"{exc.hint}\n{line}" if exc.hint else line


def _silent(_message: str) -> None:
    """Where progress goes with -q."""


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP stop a turn the way Ctrl-C does, so what ran is recorded before the process ends."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def turn_json(instance: SessionInstance, result: TurnResult | None) -> dict[str, Any]:
    """A turn for ``--json``: the instance, and each message the turn stored."""
    first = len(instance.messages) - len(result.messages) if result else len(instance.messages)
    return {
        "instance": instance.id,
        "name": instance.name,
        "head_version": instance.head_version,
        "steps": result.steps if result else 0,
        "hit_max_steps": result.hit_max_steps if result else False,
        "messages": [message_json(first + i, m) for i, m in enumerate(result.messages if result else [])],
    }


def message_json(index: int, message: ConversationMessage) -> dict[str, Any]:
    entry: dict[str, Any] = {"index": index, "role": message.role, "content": message.content}
    if message.tool_calls:
        entry["tool_calls"] = [c.model_dump() for c in message.tool_calls]
    if message.role == "tool":
        entry["tool_call_id"], entry["ok"] = message.tool_call_id, message.tool_ok
    if message.workspace_version:
        entry["workspace_version"] = message.workspace_version
    if message.metadata:
        entry["metadata"] = message.metadata
    return entry


def next_steps(instance: SessionInstance, *, pending: bool) -> None:
    """What a person can do with the instance now (stderr: scripts read the id on stdout)."""
    name = label(instance)
    lines = [f"instance {name} is ready:"]
    if pending:
        lines.append(f"  domarkx continue {name} --model P:M  answer its last message, which is not answered yet")
    lines += [
        f'  domarkx send {name} "…"            talk to its model (or: domarkx chat {name})',
        f"  domarkx log {name}                 its messages and workspace versions",
        f"  domarkx fork {name} --at N         branch at message N, workspace included",
        f"  domarkx export {name} -o out.md    write it out as Markdown",
    ]
    click.secho("\n".join(lines), err=True, dim=True)
