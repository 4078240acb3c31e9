"""``domarkx send`` and ``domarkx chat``: talk to an instance's model."""

from __future__ import annotations

import sys

import click

from domarkx.cli._common import trust_option
from domarkx.cli._session import managers, max_steps_option, model_option, run_turn


@click.command("send")
@click.argument("instance_ref", metavar="INSTANCE")
@click.argument("text", metavar="TEXT|-")
@model_option
@max_steps_option
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@trust_option
def send(instance_ref: str, text: str, model: str | None, max_steps: int, quiet: bool) -> None:
    """Send TEXT (or stdin with -) as a user message and run the turn.

    \b
    Example:
      domarkx send try1 "rename the script to main.py" --model openai:gpt-4o-mini
    """
    if text == "-":
        text = sys.stdin.read()
    instances, sessions = managers()
    with instances.store:
        run_turn(sessions, instances.get(instance_ref), text, model, max_steps, quiet)


@click.command("chat")
@click.argument("instance_ref", metavar="INSTANCE")
@model_option
@max_steps_option
@trust_option
def chat(instance_ref: str, model: str | None, max_steps: int) -> None:
    """Talk with an instance interactively; replies stream as they arrive.

    Ctrl-C stops the current turn (what was said so far is kept); Ctrl-D or
    /exit leaves.
    """
    from domarkx.errors import DomarkxError

    instances, sessions = managers()
    with instances.store:
        instance = instances.get(instance_ref)
        label = instance.name or instance.id[:12]
        click.secho(f"chatting with {label}; Ctrl-C stops a turn, Ctrl-D leaves", err=True, dim=True)
        while True:
            try:
                text = click.prompt(click.style("you", bold=True), prompt_suffix="> ", err=True)
            except (EOFError, click.Abort):
                click.echo(err=True)
                return
            if text.strip() in ("/exit", "/quit"):
                return
            if not text.strip():
                continue
            try:
                run_turn(sessions, instance, text, model, max_steps, quiet=False)
            except KeyboardInterrupt:
                click.secho("\n· turn stopped; the conversation so far is kept", err=True)
                instance = instances.get(instance.id)
            except DomarkxError as exc:
                click.secho(exc.format(), err=True, fg="red")
                if exc.hint:
                    click.secho(f"  hint: {exc.hint}", err=True)
                instance = instances.get(instance.id)
