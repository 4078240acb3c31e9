"""``domarkx export``: snapshot → Markdown."""

from __future__ import annotations

import click

from domarkx.cli._common import open_store, write_output


@click.command("export")
@click.argument("ref", metavar="REF")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE (atomically) instead of stdout.")
def export_cmd(ref: str, output: str | None) -> None:
    """Print the Markdown of snapshot REF (an id, an id prefix or a tag).

    For a document imported without macros this is the original, byte for byte.
    """
    from domarkx.session.snapshot import SnapshotManager

    with open_store() as store:
        text = SnapshotManager(store).document(ref)
    write_output(text, output)
