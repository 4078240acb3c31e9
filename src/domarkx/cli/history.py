"""``domarkx log``, ``fork`` and ``commit``: an instance's history and time travel."""

from __future__ import annotations

from typing import Any

import click

from domarkx import ids
from domarkx.cli._common import emit_json, json_option, table


@click.command("log")
@click.argument("ref", metavar="INSTANCE")
@json_option
def log(ref: str, as_json: bool) -> None:
    """One line per message: index, role, summary and linked workspace version."""
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        entries = manager.history(ref)
    if as_json:
        emit_json(entries)
        return
    table(
        ["#", "ROLE", "VERSION", "SUMMARY"],
        [
            [
                str(e["index"]),
                e["role"],
                ids.short(e["workspace_version"]) if e["workspace_version"] else "-",
                e["summary"],
            ]
            for e in entries
        ],
    )
    first = _unanswered(entries)
    if first is not None:
        last = entries[-1]["index"]
        which = f"message {first} is" if first == last else f"messages {first}-{last} are"
        click.secho(f"· {which} not answered yet: `domarkx continue {ref}` answers", err=True, dim=True)


def _unanswered(entries: list[dict[str, Any]]) -> int | None:
    """Where the tail the model owes an answer to starts (user messages or tool results), if any."""
    first = None
    for entry in reversed(entries):
        if entry["role"] not in ("user", "tool"):
            break
        first = entry["index"]
    return first


@click.command("fork")
@click.argument("ref", metavar="INSTANCE")
@click.option("--at", "at", type=int, required=True, metavar="N", help="Keep messages 0..N.")
@click.option("--name", metavar="NAME", help="Name the new instance.")
@json_option
@click.option("-q", "--quiet", is_flag=True, help="Print only the new instance id.")
def fork(ref: str, at: int, name: str | None, as_json: bool, quiet: bool) -> None:
    """A new instance with messages 0..N and the workspace as it was at message N.

    The original instance is untouched; the fork remembers its model. See
    `domarkx log` for indices.

    
    Example:
      domarkx fork try1 --at 4 --name try2
    """
    from domarkx.cli._session import managers

    manager, sessions = managers()
    with manager.store:
        parent = manager.resolve(ref)
        new = sessions.fork(parent, at, name=name)
    if as_json:
        emit_json({"id": new.id, "name": new.name, "parent": parent, "at": at, "head_version": new.head_version})
        return
    if not quiet:
        click.secho(f"· forked at message {at}, workspace {ids.short(new.head_version or '')}", err=True)
    click.echo(new.id)


@click.command("commit")
@click.argument("ref", metavar="INSTANCE")
@click.option("-t", "--tag", "tags", multiple=True, metavar="TAG", help="Tag the new snapshot (repeatable).")
@json_option
def commit(ref: str, tags: tuple[str, ...], as_json: bool) -> None:
    """Make a snapshot of the instance, workspace included (like `docker commit`).

    `domarkx run` of that snapshot starts from the committed workspace instead
    of re-running the document's code.
    """
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        snapshot_id, created = manager.commit(ref, tags=tags)
    if as_json:
        emit_json({"id": snapshot_id, "created": created, "tags": list(tags)})
    else:
        click.echo(snapshot_id)
