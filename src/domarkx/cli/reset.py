"""``domarkx reset``: rewind an instance in place, keeping what it discards in a hidden fork."""

from __future__ import annotations

import click

from domarkx import ids
from domarkx.cli._common import emit_json, json_option


@click.command("reset")
@click.argument("ref", metavar="INSTANCE")
@click.option("--at", "at", type=int, required=True, metavar="N", help="Keep messages 0..N.")
@json_option
def reset_cmd(ref: str, at: int, as_json: bool) -> None:
    """Rewind INSTANCE in place to message N: its conversation and every resource.

    The later messages and the workspace as it was are not lost: they stay in
    a hidden instance (`domarkx instances ls -a`), whose id is printed;
    `domarkx fork HIDDEN --at M` brings them back. Like `git reset` with the
    reflog. See `domarkx log` for indices.

    \b
    Examples:
      domarkx reset try1 --at 4
      domarkx fork HIDDEN --at 9      # the discarded tail, back as an instance
    """
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        done = manager.reset(ref, at)
    label = done.instance.name or ids.short(done.instance.id)
    if as_json:
        emit_json(
            {
                "instance": done.instance.id,
                "at": done.at,
                "workspace_version": done.version,
                "hidden": done.hidden,
                "discarded": done.discarded,
                "warnings": [w.warning() for w in done.unrestorable],
            }
        )
        return
    for item in done.unrestorable:
        click.secho(f"warning: {item.warning()}", err=True, fg="yellow")
    if done.hidden is None:
        click.secho(f"· {label} is already at message {at}: nothing to reset", err=True)
        return
    click.secho(f"· reset {label} to message {at}, workspace {ids.short(done.version)}", err=True)
    tail = f"messages {at + 1}..{at + done.discarded} and " if done.discarded else ""
    hidden = ids.short(done.hidden)
    click.secho(
        f"· {tail}the workspace before the reset are kept in hidden instance {hidden}"
        " (`domarkx instances ls -a` lists them)\n"
        f"  to get them back: `domarkx fork {hidden} --at {at + done.discarded}` copies them,"
        f" or `domarkx instances start {hidden}` and use it as it was",
        err=True,
    )
    click.echo(done.hidden)
