"""Snapshots: import a document (expand macros, parse, store) and read it back.

What the id covers (see docs/store.md): the canonical JSON manifest
``{"format": N, "document": <digest of the expanded document's UTF-8 bytes>,
"workspace_state": <resource versions or null>}``. The source path, tags and
timestamps are metadata kept beside it, so importing the same text from two
places gives one snapshot.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from domarkx import ids
from domarkx.data.models import FORMAT_VERSION, SessionSnapshot, SnapshotInfo
from domarkx.data.store import Store
from domarkx.errors import DocumentError, UsageError
from domarkx.parsing.markdown import MarkdownParser, decode

_STRUCTURE_EXCLUDE = {"id", "document", "source"}


def manifest(snapshot: SessionSnapshot) -> dict[str, Any]:
    """The content a snapshot id is the digest of."""
    return {
        "format": FORMAT_VERSION,
        "document": ids.digest_bytes(snapshot.document.encode("utf-8")),
        "workspace_state": snapshot.workspace_state,
    }


def read_source(source: str) -> tuple[bytes, str, Path]:
    """Bytes, display path and base directory of a document path, or ``-`` for stdin."""
    if source == "-":
        return sys.stdin.buffer.read(), "<stdin>", Path.cwd()
    path = Path(source)
    try:
        return path.read_bytes(), source, path.resolve().parent
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {source}", hint="check the path, or pass - to read stdin") from exc
    except IsADirectoryError as exc:
        raise UsageError(
            f"{source} is a directory, not a document", hint="pass a Markdown file, or - to read stdin"
        ) from exc
    except OSError as exc:
        hint = "check the file's permissions"
        raise UsageError(f"cannot read {source}: {exc.strerror}", hint=hint) from exc


class SnapshotManager:
    """Creates and reads snapshots in a :class:`Store`."""

    def __init__(self, store: Store, parser: MarkdownParser | None = None) -> None:
        self.store = store
        self.parser = parser or MarkdownParser()

    def build(
        self,
        data: bytes,
        *,
        path: str,
        base_dir: Path,
        variables: Mapping[str, str] | None = None,
        allow_outside: bool = False,
    ) -> SessionSnapshot:
        """Expand macros and parse, without storing: the pure half of ``import``."""
        from domarkx.parsing.macros import MacroExpander

        text = decode(data, path)
        expander = MacroExpander(variables=variables or {}, allow_outside=allow_outside)
        expansion = expander.expand_mapped(text, path=path, base_dir=base_dir)
        try:
            snapshot = self.parser.parse(expansion.text, path=path)
        except DocumentError as err:
            raise expansion.relocate(err) from err
        snapshot.id = ids.digest_json(manifest(snapshot))
        return snapshot

    def save(self, snapshot: SessionSnapshot, *, tags: Sequence[str] = ()) -> bool:
        """Store a built snapshot; ``False`` if it was already there (nothing new is written)."""
        from domarkx.data.store import validate_tag

        for tag in tags:
            validate_tag(tag)
        doc = snapshot.document.encode("utf-8")
        structure = snapshot.model_dump_json(exclude=_STRUCTURE_EXCLUDE).encode("utf-8")
        with self.store.write() as db:
            exists = db.execute("SELECT 1 FROM snapshots WHERE id = ?", (snapshot.id,)).fetchone()
            if not exists:
                doc_digest = self.store.put_blob(doc)
                structure_digest = self.store.put_blob(structure)
                db.execute(
                    "INSERT INTO snapshots(id, manifest, document, structure, title, source, messages,"
                    " size, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        snapshot.id,
                        ids.canonical_json(manifest(snapshot)).decode(),
                        doc_digest,
                        structure_digest,
                        snapshot.title,
                        snapshot.source,
                        len(snapshot.messages),
                        len(doc),
                        self.store.now(),
                    ),
                )
                self.store.add_refs(snapshot.id, [doc_digest, structure_digest])
            for tag in tags:
                db.execute(
                    "INSERT INTO tags(name, snapshot_id) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET snapshot_id = excluded.snapshot_id",
                    (tag, snapshot.id),
                )
        return not exists

    def resolve(self, ref: str) -> str:
        return self.store.resolve(ref)

    def get(self, ref: str) -> SessionSnapshot:
        """The stored snapshot ``ref`` names, with its structured view."""
        snapshot_id = self.resolve(ref)
        row = self.store.db.execute(
            "SELECT document, structure, source FROM snapshots WHERE id = ?", (snapshot_id,)
        ).fetchone()
        structure = json.loads(self.store.get_blob(row["structure"]))
        structure.update(
            id=snapshot_id,
            document=self.store.get_blob(row["document"]).decode("utf-8"),
            source=row["source"],
        )
        return SessionSnapshot.model_validate(structure)

    def document(self, ref: str) -> str:
        """The Markdown of a snapshot, exactly as imported (after macro expansion)."""
        row = self.store.db.execute("SELECT document FROM snapshots WHERE id = ?", (self.resolve(ref),)).fetchone()
        return self.store.get_blob(row["document"]).decode("utf-8")

    def listing(self) -> list[SnapshotInfo]:
        tags: dict[str, list[str]] = {}
        for name, sid in self.store.db.execute("SELECT name, snapshot_id FROM tags ORDER BY name"):
            tags.setdefault(sid, []).append(name)
        rows = self.store.db.execute(
            "SELECT id, title, source, messages, size, created FROM snapshots ORDER BY created DESC, id"
        )
        return [
            SnapshotInfo(
                id=r["id"],
                tags=tags.get(r["id"], []),
                title=r["title"],
                source=r["source"],
                messages=r["messages"],
                size=r["size"],
                created=r["created"],
            )
            for r in rows
        ]

    def info(self, ref: str) -> dict[str, Any]:
        """Everything ``snapshots inspect`` shows: metadata, manifest and structure summary."""
        snapshot = self.get(ref)
        listed = next(i for i in self.listing() if i.id == snapshot.id)
        data = listed.model_dump()
        data["manifest"] = manifest(snapshot)
        data["front_matter"] = snapshot.front_matter
        data["session_config"] = snapshot.session_config
        data["workspace_config"] = (
            snapshot.workspace_config.model_dump(exclude_none=True) if snapshot.workspace_config else None
        )
        data["setup"] = snapshot.setup.lang if snapshot.setup else None
        data["roles"] = [m.role for m in snapshot.messages]
        return data

    def tag(self, ref: str, tag: str) -> str:
        snapshot_id = self.resolve(ref)
        self.store.set_tag(snapshot_id, tag)
        return snapshot_id

    def remove(self, ref: str, *, force: bool = False) -> str:
        """Delete a snapshot and its tags; its blobs go at the next ``prune``.

        Instances need their snapshot (for export), so one in use is kept unless forced.
        """
        snapshot_id = self.resolve(ref)
        with self.store.write() as db:
            query = "SELECT COUNT(*) FROM instances WHERE snapshot_id = ?"
            users = db.execute(query, (snapshot_id,)).fetchone()[0]
            if users and not force:
                raise UsageError(
                    f"snapshot {ids.short(snapshot_id)} is used by {users} instance(s)",
                    hint="remove them first (`domarkx instances rm`), or pass --force",
                )
            db.execute("DELETE FROM tags WHERE snapshot_id = ?", (snapshot_id,))
            db.execute("DELETE FROM snapshots WHERE id = ?", (snapshot_id,))
            self.store.drop_refs(snapshot_id)
        return snapshot_id
