"""``domarkx instances …``: list and manage instances (like ``docker ps`` / ``docker rm``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from domarkx import ids
from domarkx.cli._common import ago, emit_json, json_option, open_store, parse_assignments, shown, table
from domarkx.errors import ReferenceNotFound, UsageError

if TYPE_CHECKING:
    from domarkx.data.instances import InstanceRow
    from domarkx.data.snapshots import SnapshotRow
    from domarkx.data.store import Store

STATES = ("ready", "busy", "stopped")
"""What ``STATUS`` says: stopped (``instances stop``), busy (a process holds the instance now), else ready."""
FILTERS = ("status", "name", "snapshot", "parent")
TITLE_WIDTH = 30


@click.group("instances")
def instances() -> None:
    """List, inspect, stop, start and remove instances."""


@instances.command("ls")
@click.option("-a", "--all", "everything", is_flag=True, help="Also list hidden instances (what `reset` set aside).")
@click.option("-n", "--last", "last", type=click.IntRange(min=1), metavar="N", help="Only the N newest.")
@click.option(
    "-f",
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help=f"Keep only matching instances (repeatable; all must match): {', '.join(FILTERS)}.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only full ids.")
@json_option
def ls(everything: bool, last: int | None, filters: tuple[str, ...], quiet: bool, as_json: bool) -> None:
    """List instances, newest first, like `docker ps`.

    STATUS is `ready`, `busy` (another domarkx is working on it now) or
    `stopped`; SNAPSHOT is the snapshot's tag when it has one; PARENT is the
    instance and message it was forked from. Filters: status=ready|busy|stopped,
    name=TEXT (part of the name), snapshot=REF, parent=INSTANCE.

    \b
    Examples:
      domarkx instances ls
      domarkx instances ls -n 5 --filter status=ready
      domarkx instances ls --filter snapshot=demo -q
    """
    with open_store() as store, store.read():
        rows = store.instances.listing(hidden=True)
        wanted = _filters(store, parse_assignments(filters, option="--filter"))
        snapshots = {s.id: s for s in store.snapshots.listing()}
        states = _states(store, rows)
    names = {row.id: row.name for row in rows}
    listed = [r for r in rows if (everything or not r.hidden) and _matches(r, states[r.id], wanted)][:last]
    if as_json:
        emit_json([_listed(row, states[row.id], snapshots.get(row.snapshot_id)) for row in listed])
    elif quiet:
        for row in listed:
            click.echo(row.id)
    else:
        table(
            ["ID", "NAME", "SNAPSHOT", "TITLE", "PARENT", "STATUS", "MESSAGES", "CREATED"],
            [_cells(row, states[row.id], snapshots.get(row.snapshot_id), names) for row in listed],
        )


def _states(store: Store, rows: Sequence[InstanceRow]) -> dict[str, str]:
    """Each instance's STATUS; busy means a process holds its lock (seen without taking it)."""
    from domarkx.data.instances import lock_name

    running = {lock_name(row.id): row.id for row in rows if row.status != "stopped"}
    busy = {running[name] for name in store.held(running)}
    return {row.id: "stopped" if row.status == "stopped" else "busy" if row.id in busy else "ready" for row in rows}


def _filters(store: Store, given: dict[str, str]) -> dict[str, str]:
    """The --filter values, with references resolved to ids."""
    from domarkx._suggest import did_you_mean

    for key, value in given.items():
        if key not in FILTERS:
            raise UsageError(
                f"unknown filter {key!r}{did_you_mean(key, FILTERS)}", hint=f"filters: {', '.join(FILTERS)}"
            )
        if key == "status" and value not in STATES:
            raise UsageError(f"unknown status {value!r}", hint=f"statuses: {', '.join(STATES)}")
    resolved = dict(given)
    if "snapshot" in given:
        resolved["snapshot"] = store.snapshots.resolve(given["snapshot"])
    if "parent" in given:
        resolved["parent"] = store.instances.resolve(given["parent"])
    return resolved


def _matches(row: InstanceRow, state: str, wanted: dict[str, str]) -> bool:
    return (
        wanted.get("status", state) == state
        and wanted.get("name", "") in (row.name or "")
        and wanted.get("snapshot", row.snapshot_id) == row.snapshot_id
        and wanted.get("parent", row.parent_id) == row.parent_id
    )


def _cells(row: InstanceRow, state: str, snapshot: SnapshotRow | None, names: dict[str, str | None]) -> list[str]:
    parent = "-"
    if row.parent_id:
        parent = f"{names.get(row.parent_id) or row.parent_id[:12]}@{row.parent_at}"
    tag = snapshot.tags[0] if snapshot and snapshot.tags else ids.short(row.snapshot_id)
    title = shown(snapshot.title if snapshot else None, TITLE_WIDTH)
    status = state + (" (hidden)" if row.hidden else "")
    return [row.id[:12], row.name or "-", tag, title, parent, status, str(row.messages), ago(row.created)]


def _listed(row: InstanceRow, state: str, snapshot: SnapshotRow | None) -> dict[str, Any]:
    keys = ("id", "name", "snapshot_id", "created", "head_version", "messages", "parent_id", "parent_at")
    return {key: getattr(row, key) for key in keys} | {
        "status": state,
        "hidden": row.hidden,
        "snapshot_tags": snapshot.tags if snapshot else [],
        "title": snapshot.title if snapshot else None,
    }


@instances.command("inspect")
@click.argument("ref", metavar="INSTANCE")
@json_option
def inspect(ref: str, as_json: bool) -> None:
    """Show an instance: when it was made, its model, snapshot, parent, and each resource and where it works.

    \b
    Examples:
      domarkx instances inspect try1
      domarkx instances inspect try1 --json | jq '.resources[].location'
    """
    with open_store() as store, store.read():
        row = store.instances.row(store.instances.resolve(ref))
        resources = store.workspaces.resources(row.workspace_id)
        settings = store.instances.settings(row.id)
        snapshot = store.snapshots.row(row.snapshot_id) if store.snapshots.exists(row.snapshot_id) else None
        parent = _row_if_kept(store, row.parent_id)
        state = _states(store, [row])[row.id]
    data = {
        **_listed(row, state, snapshot),
        "workspace_id": row.workspace_id,
        "initial_version": row.initial_version,
        "parent_name": parent.name if parent else None,
        "model": settings.get("model"),
        "settings": settings,
        "resources": [
            {"id": r.id, "name": r.name, "type": r.type, "config": r.config, "location": r.location} for r in resources
        ],
    }
    if as_json:
        emit_json(data)
        return
    for key, value in _described(data):
        click.echo(f"{key + ':':10} {value}")


def _row_if_kept(store: Store, instance_id: str | None) -> InstanceRow | None:
    """The parent's row, unless it was removed since (the fork keeps its id)."""
    if instance_id is None:
        return None
    try:
        return store.instances.row(instance_id)
    except ReferenceNotFound:
        return None


def _described(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``inspect``'s lines: label and value, every value from a stranger made harmless."""
    import datetime

    created = datetime.datetime.fromtimestamp(data["created"]).astimezone()
    parent = "-"
    if data["parent_id"]:
        parent = f"{data['parent_name'] or data['parent_id'][:12]} at message {data['parent_at']} ({data['parent_id']})"
    tags = f" ({', '.join(data['snapshot_tags'])})" if data["snapshot_tags"] else ""
    lines = [
        ("id", data["id"]),
        ("name", shown(data["name"])),
        ("status", data["status"] + (" (hidden)" if data["hidden"] else "")),
        ("created", f"{created.isoformat(timespec='seconds')} ({ago(data['created'])})"),
        ("snapshot", f"{data['snapshot_id']}{shown(tags)}"),
        ("title", shown(data["title"])),
        ("parent", parent),
        ("model", shown(data["model"]) if data["model"] else "- (set with --model on run, send or chat)"),
        ("messages", str(data["messages"])),
        ("head", data["head_version"] or "-"),
        ("workspace", data["workspace_id"]),
    ]
    lines += [(k, shown(str(v))) for k, v in sorted(data["settings"].items()) if k != "model"]
    for res in data["resources"]:
        where = f" at {shown(res['location'], 200)}" if res["location"] else " (no work dir)"
        lines.append(("resource", f"{shown(res['name'])} ({shown(res['type'])}){where}"))
    return lines


def _set_status(refs: tuple[str, ...], status: str, quiet: bool) -> None:
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        for ref in refs:
            instance = manager.set_status(ref, status)
            click.echo(instance.id if quiet else instance.name or instance.id)


quiet_option = click.option("-q", "--quiet", is_flag=True, help="Print only full ids.")


@instances.command("stop")
@click.argument("refs", nargs=-1, required=True, metavar="INSTANCE...")
@quiet_option
def stop(refs: tuple[str, ...], quiet: bool) -> None:
    """Stop instances: release their processes (kernels, containers); state is kept.

    A stopped instance takes no turns and no `exec` until `domarkx instances start`.

    \b
    Example:
      domarkx instances stop try1 try2
    """
    _set_status(refs, "stopped", quiet)


@instances.command("start")
@click.argument("refs", nargs=-1, required=True, metavar="INSTANCE...")
@quiet_option
def start(refs: tuple[str, ...], quiet: bool) -> None:
    """Start stopped instances again.

    \b
    Example:
      domarkx instances start try1
    """
    _set_status(refs, "running", quiet)


@instances.command("rm")
@click.argument("refs", nargs=-1, required=True, metavar="INSTANCE...")
@click.option("-f", "--force", is_flag=True, help="Remove instances that are not stopped too.")
@quiet_option
def rm(refs: tuple[str, ...], force: bool, quiet: bool) -> None:
    """Remove instances and their workspaces (versions stay until `domarkx prune`).

    \b
    Examples:
      domarkx instances rm try1
      domarkx instances rm -f $(domarkx instances ls -q --filter snapshot=demo)
    """
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        for ref in refs:
            removed = manager.remove(ref, force=force)
            click.echo(removed if quiet else f"removed {removed}")
