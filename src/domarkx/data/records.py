"""Whole records, for moving snapshots and instances between homes (bundles, registries).

A record is every row one object needs, as plain data that JSON carries:
:func:`snapshot_record` and :func:`instance_record` read them, the ``insert_*``
functions store them in another home unless they are there already. What the
rows name travels separately and must arrive first: blobs (``put_blob``) and
resource versions (each plugin's ``import_versions``); an instance's workspace
is made in the receiving home (``WorkspaceManager.clone``) and its id given to
:func:`insert_instance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domarkx.data.instances import InstanceRow
from domarkx.data.snapshots import NewSnapshot
from domarkx.data.versions import VersionRow
from domarkx.errors import StoreError

if TYPE_CHECKING:
    from domarkx.data.store import Store


@dataclass(frozen=True)
class SnapshotRecord:
    """A snapshot's row and tags; ``blobs`` are the digests it needs present."""

    snapshot: NewSnapshot
    tags: list[str]

    @property
    def blobs(self) -> list[str]:
        return [self.snapshot.document, self.snapshot.structure]

    @property
    def workspace_version(self) -> str | None:
        """The workspace version a committed snapshot starts from."""
        state = self.snapshot.manifest.get("workspace_state") or {}
        version = state.get("workspace_version")
        return version if isinstance(version, str) else None


@dataclass(frozen=True)
class InstanceRecord:
    """An instance's row and message bodies, its workspace's config, and the versions it links."""

    instance: InstanceRow
    bodies: list[str]
    workspace_config: str
    """The JSON the workspace was made from (``WorkspaceConfig``)."""
    versions: list[VersionRow]


def snapshot_record(store: Store, snapshot_id: str) -> SnapshotRecord:
    with store.read():
        row = store.snapshots.row(snapshot_id)
        document, structure, _source = store.snapshots.payloads(snapshot_id)
        manifest = store.snapshots.manifest(snapshot_id)
    new = NewSnapshot(row.id, manifest, document, structure, row.title, row.source, row.messages, row.size, row.created)
    return SnapshotRecord(new, row.tags)


def instance_record(store: Store, instance_id: str) -> InstanceRecord:
    with store.read():
        row = store.instances.row(instance_id)
        linked = store.instances.linked_versions().get(instance_id, set())
        versions = [found for v in sorted(linked) if (found := store.versions.get(v)) is not None]
        return InstanceRecord(
            row, store.instances.bodies(instance_id), store.workspaces.config(row.workspace_id), versions
        )


def insert_snapshot(store: Store, record: SnapshotRecord) -> bool:
    """Store the snapshot and its tags unless present; False if it was there. Its blobs must be here."""
    missing = [d for d in record.blobs if not store.blob_path(d).exists()]
    if missing:
        raise StoreError(f"snapshot {record.snapshot.id} arrived without blob {missing[0]}")
    with store.write():
        created = not store.snapshots.exists(record.snapshot.id)
        if created:
            store.snapshots.insert(record.snapshot)
        for tag in record.tags:
            store.snapshots.tag(record.snapshot.id, tag)
    return created


def insert_versions(store: Store, rows: list[VersionRow]) -> None:
    """Store workspace versions that arrived with their resource versions (already imported)."""
    with store.write():
        for row in rows:
            store.versions.insert(row)


def insert_instance(store: Store, record: InstanceRecord, workspace_id: str, **changes: Any) -> bool:
    """Store the instance (bound to ``workspace_id``, made here) unless present; False if it was there.

    ``changes`` replace row fields on the way in (e.g. ``name=None`` when the name is taken here).
    """
    row = record.instance._replace(workspace_id=workspace_id, **changes)
    with store.write():
        if row.id in store.instances.ids():
            return False
        insert_versions(store, record.versions)
        store.instances.insert(row, record.bodies)
    return True
