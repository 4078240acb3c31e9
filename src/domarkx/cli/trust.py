"""``domarkx trust``: allow a document the powers it asks for (like direnv's ``allow``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from domarkx.cli._common import ago, emit_json, json_option, open_store, parse_assignments, shown, table
from domarkx.errors import ReferenceNotFound, UsageError

if TYPE_CHECKING:
    from domarkx.data.models import SessionSnapshot, WorkspaceConfig
    from domarkx.trust import Record


@click.command("trust")
@click.argument("doc", metavar="[DOC]", required=False)
@click.option("--list", "list_", is_flag=True, help="List the trusted documents.")
@click.option("--revoke", is_flag=True, help="Forget the trust in DOC (a path, a snapshot, or a key from --list).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Fill a template variable, as import.")
@json_option
def trust_cmd(doc: str | None, list_: bool, revoke: bool, assignments: tuple[str, ...], as_json: bool) -> None:
    """Trust DOC (a Markdown file or a snapshot) with the powers it asks for.

    Powers reach past domarkx's confinement: a setup-script marked `host`,
    `sandbox: none`, a model server or key variable chosen by the document…
    Without trust, `run` and `send` refuse them. Trust is keyed by the digest of
    the setup block, session-config and workspace-config, so editing a message
    keeps it and editing those drops it; it is kept in your config directory
    ($DOMARKX_CONFIG), never in the store or an export.

    \b
    Examples:
      domarkx trust session.md
      domarkx trust --list
      domarkx trust --revoke session.md
    """
    from domarkx import trust

    if list_:
        if doc is not None or revoke:
            raise UsageError("--list takes no DOC and no --revoke")
        _list(trust.listing(), as_json)
        return
    if doc is None:
        raise UsageError("which document?", hint="domarkx trust DOC, or domarkx trust --list")
    if revoke:
        _revoke(doc, assignments)
        return
    snapshot, source = _snapshot(doc, assignments)
    powers = trust.workspace_powers(snapshot, _config(snapshot)) + trust.model_powers(snapshot)
    record = trust.grant(snapshot.model_copy(update={"source": source}), powers)
    if as_json:
        emit_json(record.__dict__)
        return
    click.echo(f"trusted {shown(source)} (key {record.key.removeprefix('sha256:')[:12]})")
    if not powers:
        click.echo("it asks for nothing that needs trust today")
    for power in powers:
        click.echo(f"  may: {shown(power.what, 200)} (line {trust.line_of(snapshot, power) + 1})")


def _list(records: list[Record], as_json: bool) -> None:
    if as_json:
        emit_json([r.__dict__ for r in records])
        return
    table(
        ["KEY", "TRUSTED", "POWERS", "SOURCE"],
        [[r.key.removeprefix("sha256:")[:12], ago(r.granted), str(len(r.powers)), r.source or "-"] for r in records],
    )


def _revoke(doc: str, assignments: tuple[str, ...]) -> None:
    from domarkx import trust

    try:
        digest = trust.key(_snapshot(doc, assignments)[0])
    except ReferenceNotFound:
        digest = trust.find(doc).key
    if not trust.revoke(digest):
        raise UsageError(f"{doc} is not trusted", hint="see `domarkx trust --list`")
    click.echo(f"revoked {shown(doc)}")


def _snapshot(doc: str, assignments: tuple[str, ...]) -> tuple[SessionSnapshot, str]:
    """The snapshot DOC names (a file, built as ``import`` would, or a stored one) and a label for it."""
    from domarkx.session.snapshot import SnapshotManager, read_source

    with open_store() as store:
        manager = SnapshotManager(store)
        if Path(doc).is_file() or doc == "-":
            data, path, base_dir = read_source(doc)
            snapshot = manager.build(data, path=path, base_dir=base_dir, variables=parse_assignments(assignments))
            return snapshot, str(Path(doc).resolve()) if doc != "-" else "<stdin>"
        snapshot = manager.get(doc)
        return snapshot, snapshot.source or f"snapshot {snapshot.id.removeprefix('sha256:')[:12]}"


def _config(snapshot: SessionSnapshot) -> WorkspaceConfig:
    from domarkx.workspace.manager import WorkspaceManager

    with open_store() as store:
        return WorkspaceManager(store).config_for(snapshot)
