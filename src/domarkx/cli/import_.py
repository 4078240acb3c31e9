"""``domarkx import``: Markdown → snapshot (like ``docker build``)."""

from __future__ import annotations

import click

from domarkx.cli._common import emit_json, human_size, json_option, open_store, parse_assignments, progress, shown

LARGE = 1_000_000
"""Bytes from which import says what it is doing (a 10 MB document takes seconds)."""


def _silent(_: str) -> None:
    """Progress nobody asked to see."""


@click.command("import")
@click.argument("source", metavar="PATH|-")
@click.option("-t", "--tag", "tags", multiple=True, metavar="TAG", help="Tag the snapshot (repeatable).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Fill a template variable (repeatable).")
@click.option(
    "--allow-outside",
    is_flag=True,
    help="Let include macros read files outside the document's directory tree.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the snapshot id.")
@json_option
def import_cmd(
    source: str, tags: tuple[str, ...], assignments: tuple[str, ...], allow_outside: bool, quiet: bool, as_json: bool
) -> None:
    """Build an immutable snapshot from the document at PATH (or stdin with -).

    Macros are expanded once, here; the snapshot id is the sha256 of the
    result, so importing the same document twice stores nothing new. The id
    is the last line printed.

    \b
    Examples:
      domarkx import session.md -t demo
      domarkx import template.md --set project=acme
      cat session.md | domarkx import -
    """
    from domarkx.session.snapshot import SnapshotManager, read_source

    variables = parse_assignments(assignments)
    data, path, base_dir = read_source(source)
    say = progress if len(data) >= LARGE and not quiet else _silent
    with open_store() as store:
        manager = SnapshotManager(store)
        say(f"parsing {shown(path)} ({human_size(len(data))})")
        snapshot = manager.build(data, path=path, base_dir=base_dir, variables=variables, allow_outside=allow_outside)
        say(f"storing {len(snapshot.messages)} messages")
        created = manager.save(snapshot, tags=list(tags))
    if as_json:
        emit_json({"id": snapshot.id, "created": created, "messages": len(snapshot.messages), "tags": list(tags)})
        return
    if not quiet:
        state = "new snapshot" if created else "unchanged, already stored"
        label = f"{shown(snapshot.title)}: " if snapshot.title else ""
        click.echo(f"{label}{len(snapshot.messages)} messages ({state})", err=True)
    click.echo(snapshot.id)
