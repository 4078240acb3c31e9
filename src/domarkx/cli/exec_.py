"""``domarkx exec``: run a command in an instance's shell (like ``docker exec``)."""

from __future__ import annotations

import shlex

import click


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("ref", metavar="INSTANCE")
@click.option("--resource", metavar="NAME", help="The resource to run in (default: the first shell).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD...")
def exec_cmd(ref: str, resource: str | None, command: tuple[str, ...]) -> None:
    """Run CMD in the instance's shell resource and print its output.

    The change is committed as a new workspace version right away; it becomes
    the instance's head and the next assistant message's version includes it
    (docs/sessions.md, "Out-of-band changes").

    \b
    Example:
      domarkx exec try1 -- ls -la
    """
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        outcome = manager.exec(ref, shlex.join(command), resource=resource)
    click.echo(outcome.text, nl=not outcome.text.endswith("\n"))
    if not outcome.ok:
        raise click.exceptions.Exit(1)
