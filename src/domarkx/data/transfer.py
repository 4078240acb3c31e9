"""Storing what ``load`` and ``pull`` bring: the repositories' writes, composed into one transaction.

Reading what ``save``/``push`` send needs nothing of its own (the repositories
read it, inside one ``Store.read``). Writing does: everything a user sees
(snapshots, tags, instances, messages, the claim on each new workspace) must
appear together or not at all, and only what is absent is written, so loading
twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from domarkx.data.events import EventRow
from domarkx.data.instances import InstanceRow
from domarkx.data.snapshots import NewSnapshot
from domarkx.data.store import Store
from domarkx.data.versions import VersionRow
from domarkx.errors import UsageError


@dataclass(frozen=True)
class SnapshotBlobs:
    """A snapshot to store, with the bytes of its document and structure (its row names their digests)."""

    row: NewSnapshot
    document: bytes
    structure: bytes


@dataclass(frozen=True)
class NewInstance:
    row: InstanceRow
    """Its ``workspace_id`` is the workspace made for it; ``parent_id`` names an instance here or arriving."""
    bodies: list[str]
    events: list[EventRow] = field(default_factory=list)
    """Its ``exec``/``cp`` events, in order (their standard input does not travel)."""


@dataclass
class Inserted:
    """What :func:`insert_session` did, for the report."""

    snapshots: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    unnamed: list[str] = field(default_factory=list)
    """Instances stored without their name, because another instance here has it."""
    moved_tags: dict[str, str] = field(default_factory=dict)
    """tag → the snapshot it named here before it moved."""
    lost_workspaces: list[str] = field(default_factory=list)
    """Workspaces made for instances another process stored first: the caller removes them."""


def tag_target(store: Store, tag: str) -> str | None:
    """The snapshot a tag names here, if any."""
    rows = store.query("SELECT snapshot_id FROM tags WHERE name = ?", (tag,))
    return str(rows[0][0]) if rows else None


def insert_session(
    store: Store,
    snapshots: Sequence[SnapshotBlobs],
    tags: dict[str, str],
    instances: Sequence[NewInstance],
    versions: Sequence[VersionRow],
) -> Inserted:
    """Versions, snapshots, tags (tag → snapshot id) and instances, where absent, in one transaction.

    ``versions`` were stored before (workspaces are loaded at them) and are
    written again: a ``prune`` in between may have taken them for unlinked.
    An instance another process stored meanwhile is left alone (its workspace
    is reported lost); one whose name is taken here is stored without a name.
    """
    done = Inserted()
    with store.write():
        for version in versions:
            store.versions.insert(version)
        for snap in snapshots:
            if not store.snapshots.exists(snap.row.id):
                store.put_blob(snap.document)
                store.put_blob(snap.structure)
                store.snapshots.insert(snap.row)
                done.snapshots.append(snap.row.id)
        for tag, snapshot_id in sorted(tags.items()):
            before = tag_target(store, tag)
            if before is not None and before != snapshot_id:
                done.moved_tags[tag] = before
            store.snapshots.tag(snapshot_id, tag)
        present = store.instances.ids()
        arriving = {new.row.id for new in instances}
        for new in instances:
            _insert_instance(store, new, present, arriving, done)
    return done


def _insert_instance(store: Store, new: NewInstance, present: set[str], arriving: set[str], done: Inserted) -> None:
    row = new.row
    if row.id in present:
        done.lost_workspaces.append(row.workspace_id)
        return
    if row.name is not None:
        try:
            store.instances.check_new_name(row.name)
        except UsageError:
            done.unnamed.append(row.id)
            row = row._replace(name=None)
    if row.parent_id is not None and row.parent_id not in present | arriving:
        row = row._replace(parent_id=None, parent_at=None)  # its parent did not travel with it
    store.instances.insert(row, new.bodies)  # claims the workspace too
    store.events.insert(new.events)
    done.instances.append(row.id)
