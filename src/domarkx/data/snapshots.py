"""Snapshot rows and their tags.

A snapshot's payloads (the document and its structured view) are blobs; its row
holds their digests, the manifest its id is the digest of, and what listings
show. Everything here returns plain rows, so ``snapshots ls`` and ``snapshots
inspect`` never load the pydantic models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from domarkx import ids
from domarkx.data.names import validate_tag
from domarkx.errors import ReferenceNotFound, UsageError

if TYPE_CHECKING:
    from domarkx.data.store import Store


class SnapshotRow(NamedTuple):
    """One snapshot as ``domarkx snapshots ls`` lists it."""

    id: str
    tags: list[str]
    title: str | None
    source: str | None
    messages: int
    size: int
    created: float


class NewSnapshot(NamedTuple):
    """What :meth:`Snapshots.insert` stores: the row beside blobs already written."""

    id: str
    manifest: dict[str, Any]
    document: str
    """Digest of the document blob."""
    structure: str
    """Digest of the structured view's blob."""
    title: str | None
    source: str | None
    messages: int
    size: int
    created: float


_LISTED = "id, title, source, messages, size, created"


class Snapshots:
    """The ``snapshots`` and ``tags`` tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def resolve(self, ref: str) -> str:
        """The id behind a tag, a full id or a unique hex prefix (≥ 4), optionally written ``snapshot:REF``."""
        rows = self.store.query("SELECT snapshot_id FROM tags WHERE name = ?", (ref,))
        if rows:
            return str(rows[0][0])
        if ref.startswith("snapshot:"):
            return self.resolve(ref.removeprefix("snapshot:"))
        found = self.store.resolve_prefix("snapshots", ref, what="snapshot")
        if found is None:
            raise ReferenceNotFound(
                f"no snapshot named {ref!r}",
                hint="use a tag or at least 4 hex characters of an id (see `domarkx snapshots ls`)",
            )
        return found

    def exists(self, snapshot_id: str) -> bool:
        return bool(self.store.query("SELECT 1 FROM snapshots WHERE id = ?", (snapshot_id,)))

    def insert(self, new: NewSnapshot) -> None:
        """Store the row and its blob references (inside the caller's write, after the blobs)."""
        with self.store.write() as db:
            db.execute(
                "INSERT INTO snapshots(id, manifest, document, structure, title, source, messages, size, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new.id,
                    ids.canonical_json(new.manifest).decode(),
                    new.document,
                    new.structure,
                    new.title,
                    new.source,
                    new.messages,
                    new.size,
                    new.created,
                ),
            )
            self.store.add_refs(new.id, [new.document, new.structure])

    def tag(self, snapshot_id: str, tag: str) -> None:
        """Give the snapshot ``tag``, moving it from another snapshot if one had it."""
        validate_tag(tag)
        with self.store.write() as db:
            db.execute(
                "INSERT INTO tags(name, snapshot_id) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET snapshot_id = excluded.snapshot_id",
                (tag, snapshot_id),
            )

    def payloads(self, snapshot_id: str) -> tuple[str, str, str | None]:
        """(document digest, structure digest, source) of a stored snapshot."""
        rows = self.store.query("SELECT document, structure, source FROM snapshots WHERE id = ?", (snapshot_id,))
        if not rows:
            raise ReferenceNotFound(f"no snapshot {ids.short(snapshot_id)}", hint="see `domarkx snapshots ls`")
        return rows[0][0], rows[0][1], rows[0][2]

    def manifest(self, snapshot_id: str) -> dict[str, Any]:
        import json  # here, not at the top: listing commands never parse JSON

        rows = self.store.query("SELECT manifest FROM snapshots WHERE id = ?", (snapshot_id,))
        if not rows:
            raise ReferenceNotFound(f"no snapshot {ids.short(snapshot_id)}", hint="see `domarkx snapshots ls`")
        manifest: dict[str, Any] = json.loads(rows[0][0])
        return manifest

    def listing(self) -> list[SnapshotRow]:
        """Every snapshot, newest first."""
        with self.store.read() as db:
            tags = self._tags(db.execute("SELECT name, snapshot_id FROM tags ORDER BY name").fetchall())
            rows = db.execute(f"SELECT {_LISTED} FROM snapshots ORDER BY created DESC, id").fetchall()  # noqa: S608
        return [SnapshotRow(r["id"], tags.get(r["id"], []), *tuple(r)[1:]) for r in rows]

    def row(self, snapshot_id: str) -> SnapshotRow:
        with self.store.read() as db:
            found = db.execute(f"SELECT {_LISTED} FROM snapshots WHERE id = ?", (snapshot_id,)).fetchone()  # noqa: S608
            tags = db.execute("SELECT name, snapshot_id FROM tags WHERE snapshot_id = ? ORDER BY name", (snapshot_id,))
            names = self._tags(tags.fetchall())
        if found is None:
            raise ReferenceNotFound(f"no snapshot {ids.short(snapshot_id)}", hint="see `domarkx snapshots ls`")
        return SnapshotRow(found["id"], names.get(snapshot_id, []), *tuple(found)[1:])

    @staticmethod
    def _tags(rows: list[Any]) -> dict[str, list[str]]:
        tags: dict[str, list[str]] = {}
        for name, snapshot_id in rows:
            tags.setdefault(snapshot_id, []).append(name)
        return tags

    def inspect(self, snapshot_id: str) -> dict[str, Any]:
        """Everything ``snapshots inspect`` shows, read from the row and the stored structured view."""
        import json  # here, not at the top: listing commands never parse JSON

        row = self.row(snapshot_id)
        _document, structure_digest, _source = self.payloads(snapshot_id)
        structure = json.loads(self.store.get_blob(structure_digest))
        setup = structure.get("setup")
        data: dict[str, Any] = row._asdict()
        data.update(
            manifest=self.manifest(snapshot_id),
            front_matter=structure.get("front_matter", {}),
            session_config=structure.get("session_config", {}),
            workspace_config=_without_none(structure.get("workspace_config")),
            setup=setup.get("lang") if isinstance(setup, dict) else None,
            roles=[m.get("role") for m in structure.get("messages", [])],
        )
        return data

    def outline(self, snapshot_id: str) -> tuple[SnapshotRow, str, list[str], str | None, list[str]]:
        """(row, document digest, message roles, setup language, resource types): the text ``snapshots inspect``
        prints, read by SQLite's JSON functions from the stored structure (no JSON parsed here)."""
        row = self.row(snapshot_id)
        document, structure_digest, _source = self.payloads(snapshot_id)
        structure = self.store.get_blob(structure_digest).decode("utf-8")
        found = self.store.query(
            "SELECT (SELECT group_concat(json_extract(value, '$.role'), char(10)) FROM json_each(?1, '$.messages')),"
            " json_extract(?1, '$.setup.lang'),"
            " (SELECT group_concat(json_extract(value, '$.type'), char(10))"
            "  FROM json_each(?1, '$.workspace_config.resources'))",
            (structure,),
        )[0]
        roles, setup, types = found[0], found[1], found[2]
        return row, document, roles.split("\n") if roles else [], setup, types.split("\n") if types else []

    def manifests(self) -> list[tuple[str, dict[str, Any], str]]:
        """(id, manifest, document digest) of every snapshot: what ``doctor`` re-hashes."""
        import json  # here, not at the top: listing commands never parse JSON

        rows = self.store.query("SELECT id, manifest, document FROM snapshots ORDER BY id")
        return [(r[0], json.loads(r[1]), r[2]) for r in rows]

    def remove(self, snapshot_id: str, *, force: bool = False) -> bool:
        """Delete the snapshot and its tags; its blobs go at the next ``prune``.

        Instances need their snapshot (to export), so one in use is kept: without
        ``force`` that is an error; with it, only its tags go (the snapshot stays
        until its last instance is removed). Returns whether the row went.
        """
        with self.store.write() as db:
            users = db.execute("SELECT COUNT(*) FROM instances WHERE snapshot_id = ?", (snapshot_id,)).fetchone()[0]
            if users and not force:
                raise UsageError(
                    f"snapshot {ids.short(snapshot_id)} is used by {users} instance(s)",
                    hint="remove them first (`domarkx instances rm`), or pass --force to remove its tags only",
                )
            db.execute("DELETE FROM tags WHERE snapshot_id = ?", (snapshot_id,))
            if users:
                return False
            db.execute("DELETE FROM snapshots WHERE id = ?", (snapshot_id,))
            self.store.drop_refs(snapshot_id)
        return True


def _without_none(value: Any) -> Any:
    """A stored config as it was written: keys left unset (``null``) dropped."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value
