"""Whole records: what a snapshot and an instance need, read in one home and stored in another."""

from __future__ import annotations

from pathlib import Path

import pytest

from domarkx.data import records
from domarkx.data.store import Store
from domarkx.errors import StoreError
from domarkx.session.instance import InstanceManager

DOC = "---\ntitle: moving\n---\n\n## user\n\n> make a file\n\n## assistant\n\n```bash\necho hi > a.txt\n```\n"


def made(home: Path) -> tuple[InstanceManager, str]:
    manager = InstanceManager(Store(home))
    snapshot = manager.snapshots.build(DOC.encode(), path="doc.md", base_dir=home)
    manager.snapshots.save(snapshot, tags=["moving"])
    return manager, manager.create(snapshot, name="mover").id


def copy_blobs(source: Store, target: Store, digests: list[str]) -> None:
    with target.write():
        for digest in digests:
            target.put_blob(source.get_blob(digest))


def test_a_snapshot_moves_with_its_tags_and_only_once(tmp_path: Path) -> None:
    source, _instance = made(tmp_path / "a")
    target = Store(tmp_path / "b")
    snapshot_id = source.store.snapshots.resolve("moving")
    record = records.snapshot_record(source.store, snapshot_id)

    with pytest.raises(StoreError, match="arrived without blob"):
        records.insert_snapshot(target, record)
    assert target.snapshots.listing() == []

    copy_blobs(source.store, target, record.blobs)
    assert records.insert_snapshot(target, record) is True
    assert records.insert_snapshot(target, record) is False
    assert target.snapshots.listing() == source.store.snapshots.listing()
    assert target.snapshots.manifest(snapshot_id) == source.store.snapshots.manifest(snapshot_id)


def test_an_instance_moves_with_its_messages_and_linked_versions(tmp_path: Path) -> None:
    source, instance_id = made(tmp_path / "a")
    target_manager = InstanceManager(Store(tmp_path / "b"))
    target = target_manager.store
    snapshot = records.snapshot_record(source.store, source.store.snapshots.resolve("moving"))
    copy_blobs(source.store, target, snapshot.blobs)
    records.insert_snapshot(target, snapshot)
    record = records.instance_record(source.store, instance_id)
    assert {v.id for v in record.versions} == source.store.instances.linked_versions()[instance_id]

    config = target_manager.workspaces.config_for(target_manager.snapshots.get(snapshot.snapshot.id))
    workspace = target_manager.workspaces.create(config, pending=True)
    assert records.insert_instance(target, record, workspace.id) is True
    assert records.insert_instance(target, record, workspace.id) is False

    moved = target.instances.row(instance_id)
    assert moved._replace(workspace_id=record.instance.workspace_id) == source.store.instances.row(instance_id)
    assert target.instances.bodies(instance_id) == source.store.instances.bodies(instance_id)
    assert all(target.versions.get(v.id) == v for v in record.versions)
    assert target.workspaces.pending() == []  # the instance claimed its workspace
