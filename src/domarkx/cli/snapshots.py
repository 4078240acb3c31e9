"""``domarkx snapshots …`` and ``domarkx prune``."""

from __future__ import annotations

import click

from domarkx import ids
from domarkx.cli._common import ago, emit_json, human_size, json_option, open_store, table


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
        data = store.snapshots.inspect(store.snapshots.resolve(ref))
    if as_json:
        emit_json(data)
        return
    click.echo(f"id:        {data['id']}")
    click.echo(f"tags:      {', '.join(data['tags']) or '-'}")
    click.echo(f"title:     {data['title'] or '-'}")
    click.echo(f"source:    {data['source'] or '-'}")
    click.echo(f"size:      {human_size(data['size'])}")
    click.echo(f"messages:  {data['messages']} ({', '.join(data['roles']) or 'none'})")
    click.echo(f"setup:     {data['setup'] or '-'}")
    resources = (data["workspace_config"] or {}).get("resources", [])
    click.echo(f"resources: {', '.join(r['type'] for r in resources) or '-'}")
    click.echo(f"document:  {data['manifest']['document']}")


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
    """Delete stored payloads that no snapshot or instance refers to.

    Workspaces that killed commands left without an instance go too (see
    `domarkx doctor`), unless another domarkx is creating one right now.

    \b
    Examples:
      domarkx prune --dry-run
      domarkx prune --json
    """
    from domarkx.session.doctor import sweep

    with open_store() as store:
        leftovers = sweep(store, dry_run=dry_run)
        count, freed = store.prune(dry_run=dry_run)
    if as_json:
        emit_json({"blobs": count, "bytes": freed, "workspaces": leftovers or [], "dry_run": dry_run})
    else:
        verb = "would free" if dry_run else "freed"
        click.echo(f"{verb} {human_size(freed)} in {count} blobs")
        for line in leftovers or []:
            click.echo(f"{'would remove' if dry_run else 'removed'} {line}")
