"""``domarkx export``: a snapshot or an instance → Markdown."""

from __future__ import annotations

import click

from domarkx.cli._common import human_size, open_store, progress, shown, write_output

MANY = 1000
"""Messages from which exporting an instance says what it is doing."""
LARGE = 1_000_000
"""Characters from which writing the document to a file says so."""


@click.command("export")
@click.argument("ref", metavar="REF")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE (atomically) instead of stdout.")
@click.option("--at", "at", type=int, metavar="N", help="For an instance: only messages 0..N.")
def export_cmd(ref: str, output: str | None, at: int | None) -> None:
    """Print the Markdown of snapshot or instance REF (id, id prefix, tag or name).

    A snapshot exports as imported: for a document without macros, the
    original byte for byte. An instance exports its whole conversation - tool
    calls, results, outputs and each assistant message's workspace version -
    as a document that `domarkx import` takes back losslessly.

    \b
    Examples:
      domarkx export demo > demo.md
      domarkx export try1 --at 4 -o branch.md
    """
    from domarkx.session.snapshot import SnapshotManager

    with open_store() as store:
        kind, found = store.resolve_any(ref)
        if kind == "snapshot":
            if at is not None:
                raise click.UsageError("--at applies to instances only")
            text = SnapshotManager(store).document(found)
        else:
            from domarkx.session.instance import InstanceManager

            count = store.instances.row(found).messages
            if count >= MANY:
                progress(f"rendering {count} messages")
            text = InstanceManager(store).export(found, at=at)
    if output not in (None, "-") and len(text) >= LARGE:
        progress(f"writing {human_size(len(text.encode('utf-8')))} to {shown(output, 400)}")
    write_output(text, output)
