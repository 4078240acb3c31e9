"""``domarkx snapshots …`` and ``domarkx prune``."""

from __future__ import annotations

import click

from domarkx import ids
from domarkx.cli._common import ago, emit_json, human_size, json_option, open_store, shown, table


@click.group("snapshots")
def snapshots() -> None:
    """Manage stored snapshots (like `docker image`)."""


@snapshots.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Print only full ids.")
@json_option
def ls(quiet: bool, as_json: bool) -> None:
    """List snapshots, newest first.

    \b
    Examples:
      domarkx snapshots ls
      domarkx snapshots ls -q | head -1
    """
    with open_store() as store:
        infos = store.snapshots.listing()
    if as_json:
        emit_json([i._asdict() for i in infos])
    elif quiet:
        for info in infos:
            click.echo(info.id)
    else:
        table(
            ["ID", "TAGS", "TITLE", "MESSAGES", "SIZE", "CREATED"],
            [
                [
                    ids.short(i.id),
                    ",".join(i.tags) or "-",
                    i.title or "-",
                    str(i.messages),
                    human_size(i.size),
                    ago(i.created),
                ]
                for i in infos
            ],
        )


@snapshots.command("inspect")
@click.argument("ref")
@json_option
def inspect(ref: str, as_json: bool) -> None:
    """Show a snapshot's metadata, manifest and structure.

    \b
    Examples:
      domarkx snapshots inspect demo
      domarkx snapshots inspect 6ccc0ea5 --json
    """
    with open_store() as store:
        snapshot_id = store.snapshots.resolve(ref)
        if as_json:
            emit_json(store.snapshots.inspect(snapshot_id))
            return
        row, document, roles, setup, types = store.snapshots.outline(snapshot_id)
    click.echo(f"id:        {row.id}")
    click.echo(f"tags:      {', '.join(row.tags) or '-'}")
    click.echo(f"title:     {shown(row.title, 200)}")
    click.echo(f"source:    {shown(row.source, 200)}")
    click.echo(f"size:      {human_size(row.size)}")
    click.echo(f"messages:  {row.messages} ({', '.join(roles) or 'none'})")
    click.echo(f"setup:     {shown(setup, 200)}")
    click.echo(f"resources: {', '.join(types) or '-'}")
    click.echo(f"document:  {document}")


@snapshots.command("tag")
@click.argument("ref")
@click.argument("tag")
@click.option("-q", "--quiet", is_flag=True, help="Print only the snapshot's full id.")
def tag(ref: str, tag: str, quiet: bool) -> None:
    """Give snapshot REF the name TAG (moving TAG if another snapshot had it).

    \b
    Example:
      domarkx snapshots tag 6ccc0ea5 demo
    """
    from domarkx.session.snapshot import SnapshotManager

    with open_store() as store:
        snapshot_id = SnapshotManager(store).tag(ref, tag)
    click.echo(snapshot_id if quiet else f"{tag} -> {snapshot_id}")


@snapshots.command("rm")
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.option("-f", "--force", is_flag=True, help="For a snapshot instances use: remove its tags.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the full ids.")
def rm(refs: tuple[str, ...], force: bool, quiet: bool) -> None:
    """Remove snapshots (their data is freed by `domarkx prune`).

    A snapshot that instances were made from is kept (they need it to
    export); with --force its tags are removed, and the snapshot goes once
    its last instance does.

    \b
    Example:
      domarkx snapshots rm demo old-draft
    """
    from domarkx.session.snapshot import SnapshotManager

    with open_store() as store:
        manager = SnapshotManager(store)
        removed = [manager.remove(ref, force=force) for ref in refs]
    for snapshot_id, gone in removed:
        click.echo(
            snapshot_id
            if quiet
            else f"removed {snapshot_id}"
            if gone
            else f"untagged {snapshot_id} (kept: instances use it)"
        )


@click.command("prune")
@click.option("-n", "--dry-run", is_flag=True, help="Report what would be freed, delete nothing.")
@json_option
def prune(dry_run: bool, as_json: bool) -> None:
    """Delete what nothing refers to, and give the space back to the disk.

    Workspaces that killed commands left without an instance, workspace
    versions nothing links (no instance's message, head or start, no committed
    snapshot), the versions each plugin keeps for them (git objects, database
    backups), unreferenced blobs, then the database's free pages. Workspaces and
    versions are left alone while another domarkx is making or committing one.

    \b
    Examples:
      domarkx prune --dry-run
      domarkx prune --json
    """
    from domarkx.session.prune import prune as run_prune

    with open_store() as store:
        report = run_prune(store, dry_run=dry_run)
    if as_json:
        emit_json(
            {
                "bytes": report.bytes,
                "blobs": report.blobs,
                "blob_bytes": report.blob_bytes,
                "versions": report.versions,
                "plugins": report.plugins,
                "database_bytes": report.database_bytes,
                "workspaces": report.leftovers,
                "notes": report.notes,
                "dry_run": dry_run,
            }
        )
        return
    verb = "would free" if dry_run else "freed"
    parts = [f"{report.blobs} blobs ({human_size(report.blob_bytes)})", f"{report.versions} workspace versions"]
    parts += [f"{kind} {human_size(size)}" for kind, size in report.plugins.items() if size]
    parts.append(f"database {human_size(report.database_bytes)}")
    click.echo(f"{verb} {human_size(report.bytes)}: {', '.join(parts)}")
    for line in report.leftovers:
        click.echo(f"{'would remove' if dry_run else 'removed'} {line}")
    for note in report.notes:
        click.echo(f"note: {note}")
