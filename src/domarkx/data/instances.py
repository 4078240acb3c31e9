"""Instance rows and their messages.

An instance is one row plus one row per message (a message's body is its JSON),
so a turn's step is a small transaction. Listing and ``log`` read only the
columns and JSON fields they show, as plain rows: no message objects are built.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from domarkx.data.names import validate_instance_name
from domarkx.errors import ReferenceNotFound, UsageError

if TYPE_CHECKING:
    from domarkx.data.store import Store


class InstanceRow(NamedTuple):
    """An instance without its messages (``messages`` is how many it has)."""

    id: str
    name: str | None
    snapshot_id: str
    workspace_id: str
    status: str
    created: float
    head_version: str | None
    initial_version: str | None
    messages: int = 0
    parent_id: str | None = None
    """The instance this one was forked from (or cut from by ``reset``)."""
    parent_at: int | None = None
    """The parent's message index it was forked at."""
    hidden: bool = False
    """Kept but not listed unless asked (``reset``'s discarded tail)."""


class HistoryRow(NamedTuple):
    """What ``domarkx log`` shows of one message, read with SQLite's JSON functions."""

    number: int
    """The message's index in the conversation (``index`` is a tuple method)."""
    role: str
    content: str
    tool_calls: list[dict[str, Any]]
    tool_ok: bool
    code_lang: str | None
    code_text: str | None
    workspace_version: str | None

    def summary(self, width: int = 72) -> str:
        """One message in a line: its text, its tool calls, or its first code block."""
        if self.tool_calls:
            import json  # here, not at the top: only messages with tool calls need it (start-up time)

            shown = ", ".join(
                f"{c['name']}({json.dumps(c['arguments'], ensure_ascii=False, sort_keys=True)})"
                for c in self.tool_calls
            )
            text = f"{self.content} → {shown}" if self.content else f"→ {shown}"
        elif self.role == "tool":
            # Most failed results already say "error: …" (the workspace's and setup-scripts' own); say it once.
            text = self.content if self.tool_ok else "error: " + self.content.lstrip().removeprefix("error: ")
        else:
            text = self.content
            if not text and self.code_text is not None:
                text = f"[{self.code_lang or 'code'}] {self.code_text}"
        line = " ".join(text.split())
        return line if len(line) <= width else line[: width - 1] + "…"


_COUNTED = (
    "i.id, i.name, i.snapshot_id, i.workspace_id, i.status, i.created, i.head_version, i.initial_version,"
    " (SELECT COUNT(*) FROM messages m WHERE m.instance_id = i.id), i.parent_id, i.parent_at, i.hidden"
)
_VERSION_OF_ASSISTANT = (
    "CASE WHEN json_extract(body, '$.role') = 'assistant' THEN json_extract(body, '$.workspace_version') END"
)
"""Only assistant messages carry workspace versions (a user message's is never followed)."""


def _row(values: Sequence[Any]) -> InstanceRow:
    row = InstanceRow(*values)
    return row._replace(hidden=bool(row.hidden))


def _parsed(text: str) -> Any:
    import json  # here, not at the top: listing commands never parse JSON

    return json.loads(text)


def lock_name(instance_id: str) -> str:
    """The name of an instance's lock (:meth:`Store.hold`)."""
    return f"instance-{instance_id}"


class Instances:
    """The ``instances`` and ``messages`` tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- references -----------------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """An instance id from a full id, a unique id prefix (≥ 4 hex) or a name; ids win over names.

        ``instance:REF`` is the same reference, said to be an instance's (see :meth:`Store.resolve_any`).
        """
        ref = ref.removeprefix("instance:")
        try:
            found = self.store.resolve_prefix("instances", ref, what="instance", id_prefix="")
        except ReferenceNotFound:
            found = None  # an all-hex name from before names had to contain a non-hex character
        if found is not None:
            return found
        rows = self.store.query("SELECT id FROM instances WHERE name = ?", (ref,))
        if rows:
            return str(rows[0][0])
        raise ReferenceNotFound(f"no instance matches {ref!r}", hint="see `domarkx instances ls`")

    def check_new_name(self, name: str) -> None:
        """A usage error unless ``name`` is a valid name no instance has."""
        validate_instance_name(name)
        if self.store.query("SELECT 1 FROM instances WHERE name = ?", (name,)):
            raise UsageError(f"an instance named {name!r} already exists", hint="pick another --name")

    # -- rows -------------------------------------------------------------------------

    def row(self, instance_id: str) -> InstanceRow:
        rows = self.store.query(f"SELECT {_COUNTED} FROM instances i WHERE i.id = ?", (instance_id,))  # noqa: S608
        if not rows:
            raise ReferenceNotFound(f"no instance {instance_id[:12]}", hint="see `domarkx instances ls`")
        return _row(rows[0])

    def listing(self, *, hidden: bool = False) -> list[InstanceRow]:
        """Every instance, newest first; ``hidden`` ones too when asked."""
        where = "" if hidden else " WHERE i.hidden = 0"
        rows = self.store.query(f"SELECT {_COUNTED} FROM instances i{where} ORDER BY i.created DESC, i.id")  # noqa: S608
        return [_row(r) for r in rows]

    def bodies(self, instance_id: str, start: int = 0, stop: int | None = None) -> list[str]:
        """The JSON of messages ``start`` up to ``stop`` (exclusive; None: the end), in order."""
        rows = self.store.query(
            "SELECT body FROM messages WHERE instance_id = ? AND idx >= ? AND (? IS NULL OR idx < ?) ORDER BY idx",
            (instance_id, start, stop, stop),
        )
        return [r[0] for r in rows]

    def linked_version(self, instance_id: str, upto: int, *, events: bool = True) -> str | None:
        """The workspace version the conversation stood at with message ``upto``, if this store has it.

        That is the version of the last assistant message at or before ``upto``,
        or of an ``exec``/``cp`` made after it and before message ``upto + 1``
        (:mod:`domarkx.data.events`), whichever came later; with ``events=False``
        the assistant message's alone (what ``diff INSTANCE`` compares the head
        with). A version a document merely names (one this store never made, nor
        received with its content) is never followed.
        """
        query = (
            "SELECT v.id, m.idx AS at, 0 AS seq FROM messages m JOIN workspace_versions v"
            " ON v.id = json_extract(m.body, '$.workspace_version')"
            " WHERE m.instance_id = ? AND m.idx <= ? AND json_extract(m.body, '$.role') = 'assistant'"
        )
        params: tuple[object, ...] = (instance_id, upto)
        if events:
            query += (
                " UNION ALL SELECT version, messages - 1, seq FROM events WHERE instance_id = ? AND messages - 1 <= ?"
            )
            params += (instance_id, upto)
        rows = self.store.query(f"SELECT id FROM ({query}) ORDER BY at DESC, seq DESC LIMIT 1", params)  # noqa: S608
        return str(rows[0][0]) if rows else None

    def history(self, instance_id: str) -> list[HistoryRow]:
        """One row per message with only the fields ``log`` summarises (linear at 10,000 messages).

        Tool calls are the only JSON parsed here, and only where there are some.
        """
        rows = self.store.query(
            "SELECT idx, json_extract(body, '$.role'), json_extract(body, '$.content'),"
            " CASE WHEN json_array_length(body, '$.tool_calls') > 0 THEN json_extract(body, '$.tool_calls') END,"
            " json_extract(body, '$.tool_ok'),"
            " json_extract(body, '$.code[0].lang'), json_extract(body, '$.code[0].text'),"
            " CASE WHEN json_extract(body, '$.role') = 'assistant' THEN json_extract(body, '$.workspace_version') END"
            " FROM messages WHERE instance_id = ? ORDER BY idx",
            (instance_id,),
        )
        return [
            HistoryRow(index, role, content or "", _parsed(calls) if calls else [], bool(ok), lang, code, version)
            for index, role, content, calls, ok, lang, code, version in rows
        ]

    def settings(self, instance_id: str) -> dict[str, Any]:
        """What the instance remembers for its next turn (``model``, ``approve``…; see docs/sessions.md)."""
        import json  # here, not at the top: listing commands never parse JSON

        rows = self.store.query("SELECT settings FROM instances WHERE id = ?", (instance_id,))
        found: dict[str, Any] = json.loads(rows[0][0]) if rows and rows[0][0] else {}
        return found

    def ids(self) -> set[str]:
        return {r[0] for r in self.store.query("SELECT id FROM instances")}

    def linked_versions(self) -> dict[str, set[str]]:
        """Instance id → the workspace versions it links: head, initial, its assistant messages' and events'."""
        linked: dict[str, set[str]] = {}
        with self.store.read() as db:
            for row in db.execute("SELECT id, head_version, initial_version FROM instances"):
                linked[row[0]] = {v for v in row[1:] if v}
            query = f"SELECT instance_id, {_VERSION_OF_ASSISTANT} FROM messages"  # noqa: S608
            for instance_id, version in db.execute(query):
                if version and instance_id in linked:
                    linked[instance_id].add(version)
            for instance_id, version in db.execute("SELECT instance_id, version FROM events"):  # exec, cp in
                if instance_id in linked:
                    linked[instance_id].add(version)
        return linked

    # -- writes -----------------------------------------------------------------------

    def insert(self, row: InstanceRow, bodies: Sequence[str]) -> None:
        """Store a new instance, its messages and its claim on its workspace, in one transaction.

        The snapshot is checked in the same transaction, so a ``snapshots rm``
        racing a ``run`` cannot leave an instance without its snapshot.
        """
        with self.store.write() as db:
            if not self.store.snapshots.exists(row.snapshot_id):
                raise ReferenceNotFound(
                    f"snapshot {row.snapshot_id} was removed while the instance was being made",
                    hint="import the document again, then retry",
                )
            try:
                db.execute(
                    "INSERT INTO instances(id, name, snapshot_id, workspace_id, status, created, head_version,"
                    " initial_version, parent_id, parent_at, hidden) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*row[:8], row.parent_id, row.parent_at, int(row.hidden)),
                )
            except sqlite3.IntegrityError as exc:
                if row.name is not None and "name" in str(exc):
                    taken = f"an instance named {row.name!r} already exists"
                    raise UsageError(taken, hint="pick another --name") from exc
                raise
            db.executemany(
                "INSERT INTO messages(instance_id, idx, body) VALUES (?, ?, ?)",
                [(row.id, i, body) for i, body in enumerate(bodies)],
            )
            self.store.workspaces.claim(row.workspace_id)

    def save_messages(self, instance_id: str, start: int, bodies: Sequence[str], head_version: str | None) -> None:
        """Store messages ``start``, ``start + 1``, … and the head version, in one transaction."""
        with self.store.write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO messages(instance_id, idx, body) VALUES (?, ?, ?)",
                [(instance_id, start + i, body) for i, body in enumerate(bodies)],
            )
            db.execute("UPDATE instances SET head_version = ? WHERE id = ?", (head_version, instance_id))

    def rewind(self, instance_id: str, at: int, workspace_id: str, head_version: str) -> None:
        """``reset``: keep messages 0..``at`` and the events before ``at + 1``; move to another workspace.

        Joins a caller's write.
        """
        with self.store.write() as db:
            db.execute("DELETE FROM messages WHERE instance_id = ? AND idx > ?", (instance_id, at))
            db.execute("DELETE FROM events WHERE instance_id = ? AND messages > ?", (instance_id, at + 1))
            db.execute(
                "UPDATE instances SET workspace_id = ?, head_version = ? WHERE id = ?",
                (workspace_id, head_version, instance_id),
            )

    def set_settings(self, instance_id: str, settings: dict[str, Any]) -> None:
        import json  # here, not at the top: listing commands never parse JSON

        with self.store.write() as db:
            db.execute(
                "UPDATE instances SET settings = ? WHERE id = ?",
                (json.dumps(settings, sort_keys=True) if settings else None, instance_id),
            )

    def set_status(self, instance_id: str, status: str) -> None:
        with self.store.write() as db:
            db.execute("UPDATE instances SET status = ? WHERE id = ?", (status, instance_id))

    def delete(self, instance_id: str, workspace_id: str) -> None:
        """Delete the instance's rows and release its workspace (still to be destroyed), in one transaction."""
        with self.store.write() as db:
            db.execute("DELETE FROM messages WHERE instance_id = ?", (instance_id,))
            self.store.events.release(instance_id)  # its rows go with the instance's (ON DELETE CASCADE)
            db.execute("DELETE FROM instances WHERE id = ?", (instance_id,))
            self.store.workspaces.claim(workspace_id, owned=False)
