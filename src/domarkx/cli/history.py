"""``domarkx log``, ``fork`` and ``commit``: an instance's history and time travel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from domarkx import ids
from domarkx.cli._common import emit_json, json_option, open_store, shown_lines, table

if TYPE_CHECKING:
    from domarkx.data.instances import HistoryRow
    from domarkx.data.store import Store
    from domarkx.workspace.compare import ResourceComparison


@click.command("log")
@click.argument("ref", metavar="INSTANCE")
@click.argument("message", type=int, required=False, metavar="[N]")
@click.option("--full", is_flag=True, help="Every message whole: its code, outputs, tool calls and results.")
@click.option("--stat", "with_stat", is_flag=True, help="Under each message, what it changed in the workspace.")
@json_option
def log(ref: str, message: int | None, full: bool, with_stat: bool, as_json: bool) -> None:
    """One line per message: index, role, summary and linked workspace version.

    Changes made between messages with `exec` or `cp` show as `·` lines, with
    the workspace version each left (the instance's head moved there). With N,
    message N whole, as Markdown (`--full`: every message so); `--json` keeps
    each message's full text under "content".

    \b
    Examples:
      domarkx log try1
      domarkx log try1 4                # message 4 with its code, outputs and tool calls
      domarkx log try1 --stat
      domarkx log try1 --json | jq '.[] | select(.role == "assistant")'
    """
    if message is not None or full:
        _log_full(ref, message, as_json=as_json)
        return
    from domarkx.cli import _events

    with open_store() as store, store.read():
        instance_id = store.instances.resolve(ref)
        rows = store.instances.history(instance_id)
        events = store.events.listing(instance_id)
        changes = _changes(store, instance_id, rows) if with_stat else {}
    if as_json:
        entries: list[dict[str, object]] = [
            {
                "index": r.number,
                "role": r.role,
                "summary": r.summary(),
                "content": r.content,
                "workspace_version": r.workspace_version,
            }
            for r in rows
        ]
        if with_stat:
            from domarkx.workspace.compare import to_json

            for row, entry in zip(rows, entries, strict=True):
                entry["stat"] = to_json(changes.get(row.number, []), patches=False)
        emit_json(_events.with_events(entries, events, _events.as_json))
        return
    if with_stat:
        _log_stat(rows, changes)
        return
    table(
        ["#", "ROLE", "VERSION", "SUMMARY"],
        _events.with_events(
            [
                [str(r.number), r.role, ids.short(r.workspace_version) if r.workspace_version else "-", r.summary()]
                for r in rows
            ],
            events,
            _events.cells,
        ),
    )
    first = _unanswered(rows)
    if first is not None:
        last = rows[-1].number
        which = f"message {first} is" if first == last else f"messages {first}-{last} are"
        click.secho(f"· {which} not answered yet: `domarkx continue {ref}` answers", err=True, dim=True)


def _log_full(ref: str, message: int | None, *, as_json: bool) -> None:
    """Messages whole, each under a header, as ``export`` writes them (``--json``: index and markdown)."""
    from domarkx.session.instance import InstanceManager

    with open_store() as store:
        shown = InstanceManager(store).rendered(ref, only=message)
    if as_json:
        emit_json([{"index": index, "markdown": text} for index, text in shown])
        return
    for index, text in shown:
        click.secho(f"── message {index} ──", dim=True)
        click.echo(shown_lines(text).rstrip("\n") + "\n")  # a stranger's reply must not drive the terminal


def _changes(store: Store, instance_id: str, rows: list[HistoryRow]) -> dict[int, list[ResourceComparison]]:
    """Message index → what it changed in the workspace."""
    from domarkx.workspace.compare import steps
    from domarkx.workspace.host import PluginHost

    initial = store.instances.row(instance_id).initial_version or ""
    return steps(PluginHost(store), initial, [(r.number, r.workspace_version) for r in rows])


def _log_stat(rows: list[HistoryRow], changes: dict[int, list[ResourceComparison]]) -> None:
    """``log --stat``: each message's line, then a line per change it made, like ``git log --stat``."""
    from domarkx.workspace.compare import stat

    for row in rows:
        version = ids.short(row.workspace_version) if row.workspace_version else "-"
        click.echo(f"{row.number:<4} {row.role:<10} {version:<12}  {row.summary()}")
        if any(c.changed for c in changes.get(row.number, [])):
            click.echo(stat(changes[row.number], indent="     "), nl=False)


def _unanswered(rows: list[HistoryRow]) -> int | None:
    """Where the tail the model owes an answer to starts (user messages or tool results), if any."""
    first = None
    for row in reversed(rows):
        if row.role not in ("user", "tool"):
            break
        first = row.number
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
    from domarkx.session.rewind import unrestorable_in

    manager, _ = managers()
    with manager.store:
        parent = manager.resolve(ref)
        new = manager.fork(parent, at, name=name)
        warnings = [item.warning() for item in unrestorable_in(manager, parent)]
    for warning in warnings:
        click.secho(f"warning: {warning}", err=True, fg="yellow")
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

    \b
    Example:
      domarkx commit try1 -t try1-done && domarkx run try1-done
    """
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        snapshot_id, created = manager.commit(ref, tags=tags)
    if as_json:
        emit_json({"id": snapshot_id, "created": created, "tags": list(tags)})
    else:
        click.echo(snapshot_id)
