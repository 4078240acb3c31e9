"""What changed between two versions of a ``sqlite`` resource: its schema, and its rows table by table.

Both versions are backups (whole database files) in the blob store; each is
opened in memory (``deserialize``), read-only, never written back. Rows are
matched by primary key (tables ``WITHOUT ROWID``) or by rowid, and compared in
SQL with ``EXCEPT``, so an unchanged table costs one scan of each side and no
Python objects per row.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any, Literal

from domarkx.errors import StoreError
from domarkx.workspace.plugin import Change, ResourceDiff

MAX_ROWS = 1000
"""Row changes listed per table at most; the rest are counted in a note."""
LIMIT = 1_000_000
"""Changed rows read per table and side at most (memory stays bounded whatever the tables hold)."""


@contextlib.contextmanager
def opened(old: bytes, new: bytes) -> Iterator[sqlite3.Connection]:
    """One in-memory connection with ``new`` as ``main`` and ``old`` attached as ``old``."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("ATTACH ':memory:' AS old")
        db.deserialize(new)
        db.deserialize(old, name="old")
        db.execute("PRAGMA query_only = 1")
        yield db
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"a sqlite version could not be read: {exc}", hint="run `domarkx doctor`") from exc
    finally:
        db.close()


def diff(old: bytes, new: bytes) -> ResourceDiff:
    """Schema changes (``schema``) and row changes (``row``, named ``table:key``) from ``old`` to ``new``."""
    changes: list[Change] = []
    notes: list[str] = []
    with opened(old, new) as db:
        before, after = _schema(db, "old"), _schema(db, "main")
        for name in sorted(before.keys() | after.keys()):
            if before.get(name) != after.get(name):
                changes.append(_schema_change(name, before.get(name), after.get(name)))
        tables = {t for t, (kind, _sql) in {**before, **after}.items() if kind == "table"}
        internal = _shadow(db, "old") | _shadow(db, "main")  # a virtual table's storage
        for table in sorted(t for t in tables - internal if not t.startswith("sqlite_")):  # and SQLite's own
            if _virtual(before.get(table)) or _virtual(after.get(table)):
                notes.append(f"{table}: a virtual table; its rows were not compared")
            elif table in before and table in after and before[table] != after[table]:
                notes.append(f"{table}: its definition changed; its rows were not compared")
            else:
                found, more = _rows(db, table, table in before, table in after)
                changes += found
                if more:
                    notes.append(f"{table}: {more} more changed rows not listed")
    return ResourceDiff(changes=changes, notes=notes)


def _schema_change(name: str, a: tuple[str, str] | None, b: tuple[str, str] | None) -> Change:
    status: Literal["added", "removed", "modified"] = "added" if a is None else "removed" if b is None else "modified"
    detail = (f"- {a[1]}\n" if a else "") + (f"+ {b[1]}\n" if b else "")
    return Change(kind="schema", name=name, status=status, detail=detail)


def _shadow(db: sqlite3.Connection, schema: str) -> set[str]:
    """Tables that store a virtual table's data (SQLite ≥ 3.37 says which)."""
    try:
        rows = db.execute(f"PRAGMA {schema}.table_list").fetchall()
    except sqlite3.OperationalError:
        return set()
    return {row[1] for row in rows if row[2] == "shadow"}


def _virtual(entry: tuple[str, str] | None) -> bool:
    return entry is not None and entry[1].upper().startswith("CREATE VIRTUAL")


def _schema(db: sqlite3.Connection, schema: str) -> dict[str, tuple[str, str]]:
    rows = db.execute(f"SELECT name, type, sql FROM {schema}.sqlite_schema WHERE sql IS NOT NULL")  # noqa: S608
    return {name: (kind, sql) for name, kind, sql in rows}


def _key(db: sqlite3.Connection, table: str, schema: str) -> list[str]:
    """The columns that identify a row: the primary key of a ``WITHOUT ROWID`` table, else the rowid."""
    info = db.execute("SELECT name, pk FROM pragma_table_info(?, ?)", (table, schema)).fetchall()
    sql = db.execute(f"SELECT sql FROM {schema}.sqlite_schema WHERE name = ?", (table,)).fetchone()[0]  # noqa: S608
    if "WITHOUT ROWID" in " ".join(sql.upper().split()):
        return [name for name, pk in sorted(info, key=lambda r: r[1]) if pk]
    return ["rowid"]


def _rows(db: sqlite3.Connection, table: str, in_old: bool, in_new: bool) -> tuple[list[Change], int]:
    """The rows added, removed or changed in ``table``, by key; and how many more were not listed."""
    key = _key(db, table, "main" if in_new else "old")
    columns = 'rowid AS "rowid", *' if key == ["rowid"] else "*"
    quoted = _quote(table)
    new_side = f"SELECT {columns} FROM main.{quoted}" if in_new else None  # noqa: S608 - a quoted name
    old_side = f"SELECT {columns} FROM old.{quoted}" if in_old else None  # noqa: S608 - a quoted name
    first = new_side or old_side
    assert first is not None
    names = [d[0] for d in db.execute(f"{first} LIMIT 0").description]
    positions = [names.index(k) for k in key]
    added = _changed(db, new_side, old_side, positions)
    removed = _changed(db, old_side, new_side, positions)
    changes: list[Change] = []
    for identity in sorted(added.keys() | removed.keys(), key=repr)[: MAX_ROWS + 1]:
        a, b = removed.get(identity), added.get(identity)
        status: Literal["added", "removed", "modified"] = (
            "added" if a is None else "removed" if b is None else "modified"
        )
        shown = names[1:] if key == ["rowid"] else names  # the rowid is in the change's name
        detail = (f"- {_row(shown, a[-len(shown) :])}\n" if a else "") + (
            f"+ {_row(shown, b[-len(shown) :])}\n" if b else ""
        )
        name = f"{table}:{','.join(_shown(v) for v in identity)}"
        changes.append(
            Change(
                kind="row",
                name=name,
                status=status,
                added=int(b is not None),
                removed=int(a is not None),
                detail=detail,
            )
        )
    total = len(added.keys() | removed.keys())
    return changes[:MAX_ROWS], total - min(total, MAX_ROWS)


def _changed(
    db: sqlite3.Connection, side: str | None, other: str | None, positions: list[int]
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Rows of ``side`` that ``other`` does not have (all of them when the table is on one side only), by key."""
    if side is None:
        return {}
    query = side if other is None else f"{side} EXCEPT {other}"
    return {tuple(r[p] for p in positions): tuple(r) for r in db.execute(query).fetchmany(LIMIT)}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _shown(value: Any) -> str:
    if isinstance(value, bytes):
        return f"x'{value.hex()}'"
    return repr(value) if isinstance(value, str) else str(value)


def _row(names: list[str], values: Any) -> str:
    return ", ".join(f"{n}={_shown(v)}" for n, v in zip(names, values, strict=True))
