"""``domarkx send``, ``continue`` and ``chat``: talk to an instance's model."""

from __future__ import annotations

import sys

import click

from domarkx.cli._common import emit_json, json_option
from domarkx.cli._session import managers, turn_options


@click.command("send")
@click.argument("instance_ref", metavar="INSTANCE")
@click.argument("text", metavar="TEXT|-")
@turn_options
@json_option
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def send(
    instance_ref: str,
    text: str,
    model: str | None,
    max_steps: int | None,
    approve: bool | None,
    verbose: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Send TEXT (or stdin with -) as a user message and run the turn.

    The model's text goes to stdout; tool calls, their output and progress to
    stderr. The instance remembers --model, --approve and --max-steps for its
    next turns. If the turn fails (the server is down, Ctrl-C), your message is
    kept: `domarkx continue INSTANCE`, or sending the same text again, answers it.

    \b
    Examples:
      domarkx send try1 "rename the script to main.py" --model openai:gpt-4o-mini
      git diff | domarkx send try1 - --json
    """
    if text == "-":
        text = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")  # not UTF-8: refused by name
    _talk(instance_ref, text, model, max_steps, approve, verbose=verbose, as_json=as_json, quiet=quiet)


@click.command("continue")
@click.argument("instance_ref", metavar="INSTANCE")
@turn_options
@json_option
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def continue_(
    instance_ref: str,
    model: str | None,
    max_steps: int | None,
    approve: bool | None,
    verbose: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Let the model answer the instance's last message.

    For a conversation that ends with a user message or with tool results: a
    turn that failed (server unreachable, 401, 5xx, Ctrl-C), a document that
    ends with a question, a turn stopped by --max-steps.

    \b
    Examples:
      domarkx continue try1
      domarkx continue try1 --model openai:gpt-4o-mini
    """
    _talk(instance_ref, None, model, max_steps, approve, verbose=verbose, as_json=as_json, quiet=quiet)


def _talk(
    ref: str,
    text: str | None,
    model: str | None,
    max_steps: int | None,
    approve: bool | None,
    *,
    verbose: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    from domarkx.cli._turn import take_turn, turn_json

    instances, sessions = managers()
    with instances.store:
        instance = instances.get(ref)
        result = take_turn(
            sessions, instance, text, model=model, approve=approve, max_steps=max_steps,
            verbose=verbose, quiet=quiet, show_text=not (quiet or as_json),
        )  # fmt: skip
    if as_json:
        emit_json(turn_json(instance, result))


@click.command("chat")
@click.argument("instance_ref", metavar="INSTANCE")
@turn_options
def chat(instance_ref: str, model: str | None, max_steps: int | None, approve: bool | None, verbose: bool) -> None:
    """Talk with an instance interactively; replies stream as they arrive.

    The model is checked before the prompt opens. Line editing and history
    work as in a shell (↑ recalls earlier messages); a line of three quotes
    (\""") starts and ends a message of several lines. Type /help for the
    commands (/model, /fork, /exit). Ctrl-C stops the current turn (what was
    said and done so far is kept); Ctrl-D leaves.

    \b
    Example:
      domarkx chat try1 --model openai:gpt-4o-mini --approve
    """
    from domarkx.cli._chat import Chat

    instances, sessions = managers()
    with instances.store:
        Chat(sessions, instances.get(instance_ref), verbose=verbose).open(model, approve, max_steps)
