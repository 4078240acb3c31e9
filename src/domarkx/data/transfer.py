"""The rows sessions travel with: what ``save``/``push`` read and ``load``/``pull`` write.

All of :mod:`domarkx.transfer`'s SQL lives here. Reading takes one consistent
view (``Store.read``), so a session is never saved half-way through a turn.
Writing inserts only what is absent, so loading twice changes nothing:

* :func:`insert_versions` first, on its own: workspace version rows are
  immutable and invisible (no command lists them), and workspaces must find
  them before they can be loaded at one;
* :func:`insert_session` then writes everything a user sees (snapshots, tags,
  instances, messages, the claim on each new workspace) in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from domarkx.data.store import Store
from domarkx.errors import StoreError

_BATCH = 500
"""Ids per ``IN (…)`` query, well below SQLite's limit on parameters."""


@dataclass(frozen=True)
class SnapshotRow:
    """A snapshot as it travels: the document is a blob beside it, the structure is derived again."""

    id: str
    manifest: str
    document: str
    source: str | None
    created: float


@dataclass(frozen=True)
class InstanceRow:
    """An instance with its messages (JSON bodies) and its workspace's config."""

    id: str
    name: str | None
    snapshot_id: str
    status: str
    created: float
    head_version: str | None
    initial_version: str | None
    workspace_config: str
    messages: list[str]


@dataclass(frozen=True)
class VersionRow:
    id: str
    versions: str
    types: str
    created: float


@dataclass(frozen=True)
class NewSnapshot:
    """A snapshot to insert, with the bytes of its two blobs."""

    row: SnapshotRow
    document: bytes
    structure: bytes
    title: str | None
    messages: int


@dataclass(frozen=True)
class NewInstance:
    row: InstanceRow
    workspace_id: str


@dataclass
class Inserted:
    """What :func:`insert_session` did, for the report."""

    snapshots: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    unnamed: list[str] = field(default_factory=list)
    """Instances loaded without their name, because another instance here has it."""
    moved_tags: dict[str, str] = field(default_factory=dict)
    """tag → the snapshot it named here before it moved."""
    lost_workspaces: list[str] = field(default_factory=list)
    """Workspaces made for instances another process stored first: the caller removes them."""


def _batches(values: Iterable[str]) -> Iterator[list[str]]:
    items = sorted(set(values))
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def _rows(db: sqlite3.Connection, query: str, values: Iterable[str]) -> Iterator[sqlite3.Row]:
    """``query`` with ``{}`` standing for a list of placeholders, run batch by batch."""
    for batch in _batches(values):
        yield from db.execute(query.format(",".join("?" * len(batch))), batch)


def snapshots(db: sqlite3.Connection, snapshot_ids: Iterable[str]) -> list[SnapshotRow]:
    query = "SELECT id, manifest, document, source, created FROM snapshots WHERE id IN ({})"
    return [SnapshotRow(**dict(row)) for row in _rows(db, query, snapshot_ids)]


def tags(db: sqlite3.Connection, snapshot_id: str) -> list[str]:
    return [r[0] for r in db.execute("SELECT name FROM tags WHERE snapshot_id = ? ORDER BY name", (snapshot_id,))]


def tag_target(db: sqlite3.Connection, tag: str) -> str | None:
    """The snapshot a tag names here, if any."""
    row = db.execute("SELECT snapshot_id FROM tags WHERE name = ?", (tag,)).fetchone()
    return str(row[0]) if row else None


def instance(db: sqlite3.Connection, instance_id: str) -> InstanceRow:
    row = db.execute(
        "SELECT i.id, i.name, i.snapshot_id, i.status, i.created, i.head_version, i.initial_version,"
        " w.config AS workspace_config FROM instances i JOIN workspaces w ON w.id = i.workspace_id WHERE i.id = ?",
        (instance_id,),
    ).fetchone()
    if row is None:
        raise StoreError(f"instance {instance_id[:12]} has lost its workspace", hint="run `domarkx doctor`")
    messages = [
        r[0] for r in db.execute("SELECT body FROM messages WHERE instance_id = ? ORDER BY idx", (instance_id,))
    ]
    return InstanceRow(**dict(row), messages=messages)


def versions(db: sqlite3.Connection, version_ids: Iterable[str]) -> list[VersionRow]:
    query = "SELECT id, versions, types, created FROM workspace_versions WHERE id IN ({})"
    return [VersionRow(**dict(row)) for row in _rows(db, query, version_ids)]


def present(db: sqlite3.Connection, table: str, row_ids: Iterable[str]) -> set[str]:
    """Which of these ids ``table`` (snapshots, instances, workspace_versions) holds already."""
    if table not in ("snapshots", "instances", "workspace_versions"):
        raise ValueError(table)
    query = f"SELECT id FROM {table} WHERE id IN ({{}})"  # noqa: S608 - a fixed table name
    return {row[0] for row in _rows(db, query, row_ids)}


def insert_versions(store: Store, rows: Sequence[VersionRow]) -> None:
    """Workspace version rows, where absent (they are immutable: an equal id is an equal row)."""
    with store.write() as db:
        _insert_versions(db, rows)


def _insert_versions(db: sqlite3.Connection, rows: Sequence[VersionRow]) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO workspace_versions(id, versions, types, created) VALUES (?, ?, ?, ?)",
        [(r.id, r.versions, r.types, r.created) for r in rows],
    )


Claim = Callable[[sqlite3.Connection, str], None]
"""Marks a workspace as owned, inside the caller's transaction (``WorkspaceManager.claim``)."""


def insert_session(
    store: Store,
    snapshots: Sequence[NewSnapshot],
    tags: dict[str, str],
    instances: Sequence[NewInstance],
    claim: Claim,
    versions: Sequence[VersionRow] = (),
) -> Inserted:
    """Snapshots, tags (tag → snapshot id) and instances, where absent, in one transaction.

    ``versions`` are written again (where absent): a ``prune`` between
    :func:`insert_versions` and here may have taken them for unlinked.

    Each new instance claims the workspace made for it with ``claim``. An instance another
    process stored meanwhile is left alone (its workspace is reported lost);
    one whose name is taken here is stored without a name.
    """
    done = Inserted()
    with store.write() as db:
        _insert_versions(db, versions)
        for snap in snapshots:
            if _insert_snapshot(store, db, snap):
                done.snapshots.append(snap.row.id)
        for tag, snapshot_id in sorted(tags.items()):
            before = db.execute("SELECT snapshot_id FROM tags WHERE name = ?", (tag,)).fetchone()
            if before and before[0] != snapshot_id:
                done.moved_tags[tag] = before[0]
            db.execute(
                "INSERT INTO tags(name, snapshot_id) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET snapshot_id = excluded.snapshot_id",
                (tag, snapshot_id),
            )
        for new in instances:
            if _insert_instance(db, new, done):
                claim(db, new.workspace_id)
    return done


def _insert_snapshot(store: Store, db: sqlite3.Connection, snap: NewSnapshot) -> bool:
    row = snap.row
    if db.execute("SELECT 1 FROM snapshots WHERE id = ?", (row.id,)).fetchone():
        return False
    document = store.put_blob(snap.document)
    structure = store.put_blob(snap.structure)
    db.execute(
        "INSERT INTO snapshots(id, manifest, document, structure, title, source, messages, size, created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.id,
            row.manifest,
            document,
            structure,
            snap.title,
            row.source,
            snap.messages,
            len(snap.document),
            row.created,
        ),
    )
    store.add_refs(row.id, [document, structure])
    return True


def _insert_instance(db: sqlite3.Connection, new: NewInstance, done: Inserted) -> bool:
    row = new.row
    if db.execute("SELECT 1 FROM instances WHERE id = ?", (row.id,)).fetchone():
        done.lost_workspaces.append(new.workspace_id)
        return False
    name = row.name
    if name is not None and db.execute("SELECT 1 FROM instances WHERE name = ?", (name,)).fetchone():
        done.unnamed.append(row.id)
        name = None
    values: dict[str, Any] = {
        "id": row.id,
        "name": name,
        "snapshot_id": row.snapshot_id,
        "workspace_id": new.workspace_id,
        "status": row.status,
        "created": row.created,
        "head_version": row.head_version,
        "initial_version": row.initial_version,
    }
    db.execute(
        f"INSERT INTO instances({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608
        list(values.values()),
    )
    db.executemany(
        "INSERT INTO messages(instance_id, idx, body) VALUES (?, ?, ?)",
        [(row.id, index, body) for index, body in enumerate(row.messages)],
    )
    done.instances.append(row.id)
    return True
