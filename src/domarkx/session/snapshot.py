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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from domarkx import ids
from domarkx.data.models import FORMAT_VERSION, SessionSnapshot
from domarkx.data.names import validate_tag
from domarkx.data.snapshots import NewSnapshot
from domarkx.data.store import Store
from domarkx.errors import DocumentError, UsageError
from domarkx.parsing.markdown import MarkdownParser, decode

_STRUCTURE_EXCLUDE = {"id", "document", "source"}


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


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
        warn: Callable[[str], None] = _to_stderr,
    ) -> SessionSnapshot:
        """Expand macros, parse and check the configuration, without storing: the pure half of ``import``.

        What is suspicious but not wrong (text without a single message) goes to
        ``warn`` as a ``path:line:col: warning: …`` line.
        """
        from domarkx.parsing.macros import MacroExpander
        from domarkx.session import config

        text = decode(data, path)
        expander = MacroExpander(variables=variables or {}, allow_outside=allow_outside)
        expansion = expander.expand_mapped(text, path=path, base_dir=base_dir)
        try:
            snapshot = self.parser.parse(expansion.text, path=path, check=config.check)
        except DocumentError as err:
            raise expansion.relocate(err) from err
        empty = config.no_messages(snapshot)
        if empty is not None:
            place = expansion.relocate(DocumentError(empty[1], path=path, line=empty[0]))
            warn(place.format().replace(": error: ", ": warning: ", 1))
        snapshot.id = ids.digest_json(manifest(snapshot))
        return snapshot

    def save(self, snapshot: SessionSnapshot, *, tags: Sequence[str] = ()) -> bool:
        """Store a built snapshot; ``False`` if it was already there (nothing new is written)."""
        for tag in tags:
            validate_tag(tag)
        doc = snapshot.document.encode("utf-8")
        structure = snapshot.model_dump_json(exclude=_STRUCTURE_EXCLUDE).encode("utf-8")
        rows = self.store.snapshots
        with self.store.write():
            created = not rows.exists(snapshot.id)
            if created:
                new = NewSnapshot(
                    id=snapshot.id,
                    manifest=manifest(snapshot),
                    document=self.store.put_blob(doc),
                    structure=self.store.put_blob(structure),
                    title=snapshot.title,
                    source=snapshot.source,
                    messages=len(snapshot.messages),
                    size=len(doc),
                    created=self.store.now(),
                )
                rows.insert(new)
            for tag in tags:
                rows.tag(snapshot.id, tag)
        return created

    def resolve(self, ref: str) -> str:
        return self.store.snapshots.resolve(ref)

    def get(self, ref: str) -> SessionSnapshot:
        """The stored snapshot ``ref`` names, with its structured view."""
        snapshot_id = self.resolve(ref)
        document, structure_digest, source = self.store.snapshots.payloads(snapshot_id)
        structure = json.loads(self.store.get_blob(structure_digest))
        structure.update(id=snapshot_id, document=self.store.get_blob(document).decode("utf-8"), source=source)
        return SessionSnapshot.model_validate(structure)

    def document(self, ref: str) -> str:
        """The Markdown of a snapshot, exactly as imported (after macro expansion)."""
        document, _structure, _source = self.store.snapshots.payloads(self.resolve(ref))
        return self.store.get_blob(document).decode("utf-8")

    def tag(self, ref: str, tag: str) -> str:
        snapshot_id = self.resolve(ref)
        self.store.snapshots.tag(snapshot_id, tag)
        return snapshot_id

    def remove(self, ref: str, *, force: bool = False) -> tuple[str, bool]:
        """Delete a snapshot and its tags (its blobs go at the next ``prune``); (id, whether the row went).

        Instances need their snapshot (for export): one in use is kept, and
        ``force`` removes only its tags.
        """
        snapshot_id = self.resolve(ref)
        return snapshot_id, self.store.snapshots.remove(snapshot_id, force=force)
