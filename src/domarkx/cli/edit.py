"""``domarkx edit INSTANCE --at N``: edit message N in $EDITOR (or --message) and go on from there in a fork."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from domarkx.cli._common import emit_json, json_option
from domarkx.cli._session import approve_option, max_steps_option, model_option, verbose_option
from domarkx.errors import UsageError

if TYPE_CHECKING:
    from domarkx.data.models import SessionInstance
    from domarkx.session.manager import SessionManager, TurnResult


@click.command("edit")
@click.argument("ref", metavar="INSTANCE")
@click.option("--at", "at", type=int, required=True, metavar="N", help="The message to edit (see `domarkx log`).")
@click.option("--message", "text", metavar="TEXT", help="The new message instead of opening $EDITOR.")
@click.option("--name", metavar="NAME", help="Name the new instance.")
@click.option("--keep-going", is_flag=True, help="Run every block even after one failed.")
@click.option("--no-cache", is_flag=True, help="Execute every message, reusing no earlier execution.")
@verbose_option
@approve_option
@max_steps_option
@model_option
@json_option
@click.option("-q", "--quiet", is_flag=True, help="Print only the new instance id.")
def edit_cmd(
    ref: str,
    at: int,
    text: str | None,
    name: str | None,
    keep_going: bool,
    no_cache: bool,
    verbose: bool,
    approve: bool | None,
    max_steps: int | None,
    model: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Edit message N of INSTANCE and go on from there, in a new instance.

    The message opens in $EDITOR as Markdown (or is given with --message;
    text without a `## role` heading keeps the message's role). A fork gets
    messages 0..N-1, the edited message, and its workspace as it was before
    message N. Offline, the rest of the conversation follows and runs again
    from N, reusing what the build cache holds (a text-only edit runs
    nothing). With --model, the model answers the edited user message
    instead. INSTANCE itself is untouched (`domarkx reset` rewinds in place).

    \b
    Examples:
      domarkx edit try1 --at 3
      domarkx edit try1 --at 2 --message "> use SQLite instead" --model openai:gpt-4o-mini
    """
    from domarkx.cli._execute import RunView, check, report_json
    from domarkx.cli._session import managers, progress
    from domarkx.cli._turn import next_steps, turn_json
    from domarkx.session.edit import branch, current_text, parse_message, run_from
    from domarkx.session.execute import RunOptions
    from domarkx.session.manager import pending

    instances, sessions = managers()
    with instances.store:
        source = instances.get(ref)
        before = current_text(source, at)
        edited = text if text is not None else click.edit(before, extension=".md", require_save=True)
        if edited is None or edited == before:
            raise UsageError("the message was not changed: nothing to do", hint="save the file in the editor")
        message = parse_message(edited, source.messages[at].role)
        if model is not None and message.role != "user":
            raise UsageError("--model answers an edited user message", hint="an edited assistant message runs offline")
        fork = branch(instances, source.id, at, message, name=name, tail=model is None)
        if not (quiet or as_json):
            progress(f"forked {source.name or source.id[:12]} before message {at}: {fork.name or fork.id[:12]}")
        view = RunView(quiet=quiet or as_json)
        run_from(instances, fork, at, RunOptions(keep_going=keep_going, cache=not no_cache, observer=view))
        fork = instances.get(fork.id)
        result = None
        if model is not None:
            result = _answer(sessions, fork, model, approve, max_steps, verbose=verbose, quiet=quiet or as_json)
    if as_json:
        emit_json(
            {**turn_json(fork, result), "parent": source.id, "pending": pending(fork), **report_json(view.report)}
        )
    else:
        if not quiet:
            next_steps(fork, pending=pending(fork))
        click.echo(fork.id)
    check(view.report, fork.id)


def _answer(
    sessions: SessionManager,
    fork: SessionInstance,
    model: str,
    approve: bool | None,
    max_steps: int | None,
    *,
    verbose: bool,
    quiet: bool,
) -> TurnResult:
    """Let the model answer the edited user message, shown like `domarkx continue`."""
    from domarkx.cli._turn import take_turn

    return take_turn(
        sessions, fork, None, model=model, approve=approve, max_steps=max_steps,
        verbose=verbose, quiet=quiet, show_text=not quiet,
    )  # fmt: skip
