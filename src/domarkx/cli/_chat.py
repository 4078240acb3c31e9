"""The ``domarkx chat`` loop: read a message, run the turn, again.

Line editing and history come from the standard library's ``readline`` (the
arrow keys, Ctrl-A/E/R…, a history file in the domarkx home), so chat needs no
extra dependency; without a terminal (input from a pipe) lines are read plainly
and no prompt is shown. A line of three quotes starts a message of
several lines and another ends it; a line starting with ``/`` is a command.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from domarkx.cli._session import label, progress
from domarkx.cli._turn import Terminal, run_turn, turn_failed
from domarkx.errors import DomarkxError, ProviderError, UsageError
from domarkx.session.manager import pending

if TYPE_CHECKING:
    from domarkx.data.models import SessionInstance
    from domarkx.llm.base import Provider
    from domarkx.session.manager import SessionManager

BLOCK = '"""'
HISTORY_LENGTH = 1000
HELP = f"""\
  {BLOCK}             start (and end) a message of several lines
  /model          show the model; /model PROVIDER:MODEL switches (and remembers it)
  /fork [N]       branch the conversation at message N (default: the last) and go on there
  /help           this list
  /exit           leave (so does Ctrl-D)
  //text          send "/text" (a message that starts with a slash)
  Ctrl-C stops the current turn: what was said and done so far is kept."""


class Chat:
    """One chat session with an instance (it may move to a fork with /fork)."""

    def __init__(self, sessions: SessionManager, instance: SessionInstance, *, verbose: bool) -> None:
        self.sessions = sessions
        self.instance = instance
        self.verbose = verbose
        self.provider: Provider | None = None
        self.steps = 0
        self.terminal = Terminal(verbose=verbose)

    def open(self, model: str | None, approve: bool | None, max_steps: int | None) -> None:
        """Check the model, then talk until /exit or end of input."""
        provider, self.steps, asking = self.sessions.prepare(self.instance, model, approve, max_steps)
        self.provider = provider
        try:
            provider.check()  # a dead server is one line now, not after the first message
            self.terminal = Terminal(verbose=self.verbose, approve=asking)
            progress(
                f"chatting with {label(self.instance)} ({provider.name}:{provider.model});"
                " /help lists commands, Ctrl-D leaves"
            )
            with LineReader(self.sessions.instances.store.home / "chat_history") as lines:
                if pending(self.instance):
                    progress("its last message is not answered yet: answering it first")
                    self.turn(None)
                self.talk(lines)
        finally:
            self.provider.close()

    def talk(self, lines: LineReader) -> None:
        while (text := lines.read()) is not None:
            if text.startswith("/") and not text.startswith("//"):
                if not self.command(text):
                    return
            elif text.strip():
                self.turn(text.removeprefix("/"))

    def turn(self, text: str | None) -> None:
        assert self.provider is not None
        try:
            run_turn(self.sessions, self.instance, text, self.provider, max_steps=self.steps, terminal=self.terminal)
        except KeyboardInterrupt:
            progress("turn stopped; what was said and done so far is kept")
        except DomarkxError as exc:
            if isinstance(exc, ProviderError):
                turn_failed(self.instance, exc)
            show_error(exc)

    def command(self, line: str) -> bool:
        """Run a /command; False to leave."""
        name, _, argument = line.strip().partition(" ")
        argument = argument.strip()
        try:
            if name in ("/exit", "/quit"):
                return False
            if name == "/help":
                click.echo(HELP, err=True)
            elif name == "/model":
                self.switch_model(argument)
            elif name == "/fork":
                self.fork(argument)
            else:
                raise UsageError(f"unknown command {name}", hint="/help lists the commands; //text sends /text")
        except DomarkxError as exc:
            show_error(exc)
        return True

    def switch_model(self, spec: str) -> None:
        assert self.provider is not None
        if spec:
            provider = self.sessions.provider_for(self.instance, spec)
            provider.check()
            self.sessions.remember(self.instance, model=spec)
            self.provider.close()
            self.provider = provider
        progress(f"model: {self.provider.name}:{self.provider.model}")

    def fork(self, argument: str) -> None:
        last = len(self.instance.messages) - 1
        try:
            at = int(argument) if argument else last
        except ValueError:
            raise UsageError(f"/fork takes a message number, not {argument!r}", hint="see `domarkx log`") from None
        new = self.sessions.instances.fork(self.instance.id, at)
        progress(f"forked {label(self.instance)} at message {at} as {label(new)}; now chatting there")
        self.instance = new


def show_error(exc: DomarkxError) -> None:
    click.secho(exc.format(), err=True, fg="red")
    for line in (exc.hint or "").splitlines():
        click.echo(f"  hint: {line}", err=True)


class LineReader:
    """Messages typed at the terminal (readline) or read from a pipe."""

    def __init__(self, history: Path) -> None:
        self.history = history
        self.interactive = sys.stdin.isatty() and sys.stdout.isatty()
        # Text that is not UTF-8 reaches the turn as surrogates, which refuses it by name (one error line).
        if hasattr(sys.stdin, "reconfigure"):
            sys.stdin.reconfigure(errors="surrogateescape")

    def __enter__(self) -> LineReader:
        if self.interactive:
            import readline

            readline.set_history_length(HISTORY_LENGTH)
            with contextlib.suppress(OSError):
                readline.read_history_file(self.history)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.interactive:
            import readline

            with contextlib.suppress(OSError):
                readline.write_history_file(self.history)
                os.chmod(self.history, 0o600)  # what you typed is yours alone

    def read(self) -> str | None:
        """The next message (several lines between two ``\"\"\"`` lines); None at end of input."""
        while True:
            try:
                first = self._line("you> ")
                if first is None or first.strip() != BLOCK:
                    return first
                lines: list[str] = []
                while (line := self._line("...> ")) is not None and line.strip() != BLOCK:
                    lines.append(line)
                return "\n".join(lines)
            except KeyboardInterrupt:  # at the prompt, Ctrl-C drops the line, as in a shell
                click.echo(err=True)

    def _line(self, prompt: str) -> str | None:
        if self.interactive:
            try:
                return input(prompt)
            except EOFError:
                click.echo(err=True)
                return None
        line = sys.stdin.readline()  # no prompt: nobody is typing at a pipe
        return line.removesuffix("\n") if line else None
