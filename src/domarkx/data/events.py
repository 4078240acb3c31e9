"""Changes to an instance's workspace made outside a turn: ``exec`` and ``cp`` in.

No message caused them, so no message links their versions; each is an event
row instead, in order, saying when (after how many messages), what ran where,
which version it found and which it left. The head moves to that version in the
same transaction, so ``log`` can always say why the head is where it is, and
``fork``, ``prune`` and ``doctor`` treat an event's version like a message's.
Standard input given to ``exec -i`` is kept as a blob, so the event can be
read again exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from domarkx.data.store import Store


class EventRow(NamedTuple):
    """One out-of-band change, as ``log`` shows it."""

    instance_id: str
    seq: int
    messages: int
    """How many messages the conversation had: the event came after message ``messages - 1``."""
    kind: str
    """``exec`` or ``cp``."""
    resource: str
    detail: dict[str, Any]
    before: str | None
    version: str
    created: float


_COLUMNS = "instance_id, seq, messages, kind, resource, detail, before, version, created"


def _row(values: Sequence[Any]) -> EventRow:
    import json  # here, not at the top: `log` of an instance without events parses nothing

    instance_id, seq, messages, kind, resource, detail, before, version, created = values
    return EventRow(instance_id, seq, messages, kind, resource, json.loads(detail), before, version, created)


_INSERT = f"INSERT INTO events({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608 - fixed names


def _values(row: EventRow) -> tuple[Any, ...]:
    """A row's column values, its detail as canonical JSON."""
    import json

    return (*row[:5], json.dumps(row.detail, sort_keys=True), *row[6:])


def blob_owner(instance_id: str) -> str:
    """Who holds the blobs (standard input) of an instance's events."""
    return f"events:{instance_id}"


class Events:
    """The ``events`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def record(
        self,
        instance_id: str,
        *,
        messages: int,
        kind: str,
        resource: str,
        detail: dict[str, Any],
        before: str | None,
        version: str,
        stdin: bytes | None = None,
    ) -> EventRow:
        """Store an event and move the instance's head to its version, in one transaction."""
        with self.store.write() as db:
            if stdin is not None:
                digest = self.store.put_blob(stdin)
                self.store.add_refs(blob_owner(instance_id), [digest])
                detail = {**detail, "stdin": digest, "stdin_bytes": len(stdin)}
            last = db.execute("SELECT MAX(seq) FROM events WHERE instance_id = ?", (instance_id,)).fetchone()[0]
            seq = (last or 0) + 1
            row = EventRow(instance_id, seq, messages, kind, resource, detail, before, version, self.store.now())
            db.execute(_INSERT, _values(row))
            db.execute("UPDATE instances SET head_version = ? WHERE id = ?", (version, instance_id))
        return row

    def listing(self, instance_id: str) -> list[EventRow]:
        """The instance's events, oldest first."""
        rows = self.store.query(
            f"SELECT {_COLUMNS} FROM events WHERE instance_id = ? ORDER BY seq",  # noqa: S608 - fixed names
            (instance_id,),
        )
        return [_row(r) for r in rows]

    def copy(self, source: str, target: str, upto: int) -> None:
        """Give a fork at message ``upto`` the events that came before its last message's successor."""
        with self.store.write() as db:
            db.execute(
                f"INSERT INTO events({_COLUMNS}) SELECT ?, seq, messages, kind, resource, detail, before,"  # noqa: S608
                " version, created FROM events WHERE instance_id = ? AND messages <= ?",
                (target, source, upto + 1),
            )
            db.execute(
                "INSERT OR IGNORE INTO blob_refs(owner, digest) SELECT ?, json_extract(detail, '$.stdin')"
                " FROM events WHERE instance_id = ? AND json_extract(detail, '$.stdin') IS NOT NULL",
                (blob_owner(target), target),
            )

    def insert(self, rows: Sequence[EventRow]) -> None:
        """Store events as they were (``load``, ``pull``); joins a caller's write."""
        with self.store.write() as db:
            db.executemany(_INSERT, [_values(row) for row in rows])

    def release(self, instance_id: str) -> None:
        """Drop the blobs of a removed instance's events (its rows go with it: ``ON DELETE CASCADE``)."""
        self.store.drop_refs(blob_owner(instance_id))
