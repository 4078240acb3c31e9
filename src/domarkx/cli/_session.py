"""What the instance commands share: opening managers and the options of commands that talk to a model.

Imported by quick commands (``log``, ``instances``) too, so nothing heavy is
imported here; showing a turn lives in :mod:`domarkx.cli._turn`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from domarkx.cli._common import progress as progress  # where run, chat and turns took it from
from domarkx.cli._common import trust_option

if TYPE_CHECKING:
    from domarkx.data.models import SessionInstance
    from domarkx.session.instance import InstanceManager
    from domarkx.session.manager import SessionManager

F = TypeVar("F", bound=Callable[..., Any])

model_option = click.option(
    "--model",
    metavar="PROVIDER:MODEL",
    help="Model to use, e.g. openai:gpt-4o-mini or replay:script.yaml; the instance remembers it "
    "(default: the instance's last --model, then session-config `model`, then $DOMARKX_MODEL).",
)
max_steps_option = click.option(
    "--max-steps",
    type=int,
    metavar="N",
    help="Most model calls in one turn (default 10; remembered).",
)
approve_option = click.option(
    "--approve/--no-approve",
    default=None,
    help="Ask y/n/always before each tool call (default: session-config `approve`; remembered).",
)
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Show tool results in full.")


def turn_options(command: F) -> F:
    """The options of every command that talks to the model (run, send, continue, chat)."""
    for option in (trust_option, verbose_option, approve_option, max_steps_option, model_option):
        command = option(command)
    return command


def label(instance: SessionInstance) -> str:
    """How a person refers to the instance: its name, else a short id."""
    return instance.name or instance.id[:12]


def managers() -> tuple[InstanceManager, SessionManager]:
    from domarkx.cli._common import open_store
    from domarkx.session.instance import InstanceManager
    from domarkx.session.manager import SessionManager

    instances = InstanceManager(open_store())
    return instances, SessionManager(instances)
