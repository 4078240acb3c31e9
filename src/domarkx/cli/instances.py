"""``domarkx instances …``: list and manage instances (like ``docker ps`` / ``docker rm``)."""

from __future__ import annotations

import click

from domarkx import ids
from domarkx.cli._common import ago, emit_json, json_option, table


@click.group("instances")
def instances() -> None:
    """List, inspect, stop, start and remove instances."""


@instances.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Print only full ids.")
@click.option("-a", "--all", "show_all", is_flag=True, help="Also the hidden instances `domarkx reset` keeps.")
@json_option
def ls(quiet: bool, show_all: bool, as_json: bool) -> None:
    """List instances, newest first."""
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        rows = manager.listing(hidden=show_all)
    if as_json:
        emit_json(rows)
    elif quiet:
        for row in rows:
            click.echo(row["id"])
    else:
        table(
            ["ID", "NAME", "SNAPSHOT", "STATUS", "MESSAGES", "CREATED"],
            [
                [
                    row["id"][:12],
                    row["name"] or "-",
                    ids.short(row["snapshot_id"]),
                    f"hidden (reset of {row['parent_id'][:12]} at {row['parent_at']})"
                    if row["hidden"]
                    else row["status"],
                    str(row["messages"]),
                    ago(row["created"]),
                ]
                for row in rows
            ],
        )


@instances.command("inspect")
@click.argument("ref", metavar="INSTANCE")
@json_option
def inspect(ref: str, as_json: bool) -> None:
    """Show an instance: its snapshot, workspace, resources and versions."""
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        instance = manager.get(ref)
        workspace = manager.workspaces.open(instance.workspace_id)
        data = {
            "id": instance.id,
            "name": instance.name,
            "snapshot_id": instance.snapshot_id,
            "status": instance.status,
            "created": instance.created,
            "messages": len(instance.messages),
            "workspace_id": instance.workspace_id,
            "head_version": instance.head_version,
            "resources": [r.model_dump() for r in workspace.resources],
        }
    if as_json:
        emit_json(data)
        return
    for key in ("id", "name", "snapshot_id", "status", "messages", "workspace_id", "head_version"):
        click.echo(f"{key + ':':14} {data[key] if data[key] is not None else '-'}")
    for res in workspace.resources:
        click.echo(f"{'resource:':14} {res.name} ({res.type})")


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
