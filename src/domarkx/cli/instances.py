"""``domarkx instances …``: list and manage instances (like ``docker ps`` / ``docker rm``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from domarkx import ids
from domarkx.cli._common import ago, emit_json, json_option, open_store, table

if TYPE_CHECKING:
    from domarkx.data.instances import InstanceRow


@click.group("instances")
def instances() -> None:
    """List, inspect, stop, start and remove instances."""


@instances.command("ls")
@click.option("-a", "--all", "everything", is_flag=True, help="Also list hidden instances (what `reset` set aside).")
@click.option("-q", "--quiet", is_flag=True, help="Print only full ids.")
@json_option
def ls(everything: bool, quiet: bool, as_json: bool) -> None:
    """List instances, newest first, with the instance and message each was forked from."""
    with open_store() as store:
        rows = store.instances.listing(hidden=everything)
    if as_json:
        emit_json([_listed(row) for row in rows])
    elif quiet:
        for row in rows:
            click.echo(row.id)
    else:
        table(
            ["ID", "NAME", "SNAPSHOT", "PARENT", "STATUS", "MESSAGES", "CREATED"],
            [[row.id[:12], row.name or "-", ids.short(row.snapshot_id), _parent(row), *_state(row)] for row in rows],
        )


def _parent(row: InstanceRow) -> str:
    return f"{row.parent_id[:12]}@{row.parent_at}" if row.parent_id else "-"


def _state(row: InstanceRow) -> list[str]:
    return [row.status + (" (hidden)" if row.hidden else ""), str(row.messages), ago(row.created)]


def _listed(row: InstanceRow) -> dict[str, Any]:
    keys = ("id", "name", "snapshot_id", "status", "created", "head_version", "messages", "parent_id", "parent_at")
    return {key: getattr(row, key) for key in keys} | {"hidden": row.hidden}


@instances.command("inspect")
@click.argument("ref", metavar="INSTANCE")
@json_option
def inspect(ref: str, as_json: bool) -> None:
    """Show an instance: its snapshot, workspace, resources (and where each works) and versions."""
    with open_store() as store, store.read():
        row = store.instances.row(store.instances.resolve(ref))
        resources = store.workspaces.resources(row.workspace_id)
    data = {**_listed(row), "workspace_id": row.workspace_id}
    data["resources"] = [
        {"id": r.id, "name": r.name, "type": r.type, "config": r.config, "location": r.location} for r in resources
    ]
    if as_json:
        emit_json(data)
        return
    shown = (
        "id",
        "name",
        "snapshot_id",
        "parent_id",
        "parent_at",
        "status",
        "messages",
        "workspace_id",
        "head_version",
    )
    for key in shown:
        click.echo(f"{key + ':':14} {data[key] if data[key] is not None else '-'}")
    click.echo(f"{'head_version:':14} {row.head_version or '-'}")
    for res in resources:
        where = f" at {res.location}" if res.location else ""
        click.echo(f"{'resource:':14} {res.name} ({res.type}){where}")


def _set_status(refs: tuple[str, ...], status: str) -> None:
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        for ref in refs:
            instance = manager.set_status(ref, status)
            click.echo(instance.name or instance.id)


@instances.command("stop")
@click.argument("refs", nargs=-1, required=True, metavar="INSTANCE...")
def stop(refs: tuple[str, ...]) -> None:
    """Stop instances: release their processes (kernels, containers); state is kept."""
    _set_status(refs, "stopped")


@instances.command("start")
@click.argument("refs", nargs=-1, required=True, metavar="INSTANCE...")
def start(refs: tuple[str, ...]) -> None:
    """Start stopped instances again."""
    _set_status(refs, "running")


@instances.command("rm")
@click.argument("refs", nargs=-1, required=True, metavar="INSTANCE...")
@click.option("-f", "--force", is_flag=True, help="Remove running instances too.")
def rm(refs: tuple[str, ...], force: bool) -> None:
    """Remove instances and their workspaces (versions stay until `domarkx prune`)."""
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        for ref in refs:
            click.echo(f"removed {manager.remove(ref, force=force)}")
