"""What the instance commands share: opening managers and showing a turn as it happens."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from domarkx.data.models import ConversationMessage, SessionInstance, ToolCallRecord
    from domarkx.session.instance import InstanceManager
    from domarkx.session.manager import SessionManager, TurnResult

model_option = click.option(
    "--model",
    metavar="PROVIDER:MODEL",
    help="Model to use, e.g. openai:gpt-4o-mini or replay:script.yaml "
    "(default: session-config `model`, then $DOMARKX_MODEL).",
)
max_steps_option = click.option(
    "--max-steps", default=10, show_default=True, metavar="N", help="Most model calls in one turn."
)


def progress(message: str) -> None:
    click.secho(f"· {message}", err=True, dim=True)


def show_tool(call: ToolCallRecord, result: ConversationMessage) -> None:
    args = json.dumps(call.arguments, ensure_ascii=False)
    if len(args) > 120:
        args = args[:119] + "…"
    click.secho(f"\n→ {call.name}({args})", err=True, fg="cyan")
    status = "ok" if result.tool_ok else "error"
    first = result.content.strip().splitlines()[:1]
    click.secho(f"  {status}: {first[0][:120] if first else ''}", err=True, dim=True)


def stream_text(delta: str) -> None:
    click.echo(delta, nl=False)


def run_turn(
    sessions: SessionManager,
    instance: SessionInstance,
    text: str,
    model: str | None,
    max_steps: int,
    quiet: bool,
) -> TurnResult:
    """Send one user message, streaming the reply unless quiet."""
    provider = sessions.provider_for(instance, model)
    result = sessions.send(
        instance,
        text,
        provider,
        max_steps=max_steps,
        on_text=None if quiet else stream_text,
        on_tool=None if quiet else show_tool,
    )
    if not quiet:
        click.echo()
        if result.hit_max_steps:
            click.secho(f"· stopped after --max-steps {max_steps}; send another message to go on", err=True)
    return result


def managers() -> tuple[InstanceManager, SessionManager]:
    from domarkx.cli._common import open_store
    from domarkx.session.instance import InstanceManager
    from domarkx.session.manager import SessionManager

    instances = InstanceManager(open_store())
    return instances, SessionManager(instances)
