"""``sqlite``: one SQLite database file per resource.

A version is the content digest of a copy made with SQLite's backup API, kept as
a blob in the store; loading copies that blob back into the resource's database
with the same API. The backup of an unchanged database is byte-identical (pages
are copied as they are, and a database restored from a blob backs up to that
same blob), so committing without a change gives the same version. Commit skips
even the copy when no ``execute`` ran and the file's size and mtime are as they
were at the last commit or load.

Statements cannot reach other files: ``ATTACH`` (and so ``VACUUM INTO``) is
refused by an authorizer, and extension loading stays off.
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domarkx import ids
from domarkx.errors import StoreError, UsageError
from domarkx.tools.schema import object_schema
from domarkx.workspace.plugin import CodeRunner, Plugin, Resource, ToolError, ToolSpec, resource_path
from domarkx.workspace.plugins._state import parse_config, read_state, write_state

TYPE = "sqlite"
DB_FILE = "db.sqlite"
BLOB_OWNER = "plugin:sqlite"
"""Blob-reference owner of every sqlite version: versions stay until the store forgets the plugin."""


class SqliteConfig(BaseModel):
    """``workspace-config`` options of a ``sqlite`` resource."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # state.json is JSON: no infinities

    setup: str = ""
    """An SQL script run once when the resource is created (schema, seed rows)."""
    timeout: float = Field(30.0, gt=0)
    """Seconds a statement may run before it is interrupted."""
    max_rows: int = Field(1000, ge=1, le=1_000_000)
    """Rows a query returns at most."""
    max_output: int = Field(100_000, ge=1000, le=100_000_000)
    """Characters of values a call returns at most: a longer text or blob is cut, later rows are dropped."""


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: SqliteConfig
    version: str | None = None
    changed: bool = True
    """An ``execute`` ran since the last commit or load."""
    stat: tuple[int, int] | None = None
    """(size, mtime_ns) of the database file at the last commit or load."""


_SQL = {"type": "string", "description": "SQL text."}
_PARAMS = {
    "type": ["array", "object"],
    "description": "Values for ? placeholders (a list) or :name placeholders (an object).",
}
TOOLS = [
    ToolSpec(
        name="query",
        description="Run a read-only SQL query; returns the column names and the rows.",
        parameters=object_schema({"sql": _SQL, "params": _PARAMS}, ["sql"]),
    ),
    ToolSpec(
        name="execute",
        description=(
            "Run SQL that changes the database: one statement (with optional params) or a script "
            "of several; returns the number of rows changed."
        ),
        parameters=object_schema({"sql": _SQL, "params": _PARAMS}, ["sql"]),
    ),
    ToolSpec(
        name="schema",
        description="Show the SQL that created each table, index, view and trigger.",
        parameters=object_schema({}, []),
    ),
]


class SqlitePlugin(Plugin):
    """A SQLite database per resource; versions are backups kept in the content-addressed store."""

    code = CodeRunner(tool="execute", argument="sql", languages=frozenset({"sql", "sqlite"}))
    config_model = SqliteConfig

    @property
    def type(self) -> str:
        return TYPE

    @classmethod
    def describe_tools(cls) -> list[ToolSpec]:
        return list(TOOLS)

    def _dir(self, resource_id: str) -> Path:
        return resource_path(self.context.home, resource_id)

    def database(self, resource_id: str) -> Path:
        """The resource's database file (for callers that want to look, such as tests)."""
        return self._dir(resource_id) / DB_FILE

    # -- lifecycle ---------------------------------------------------------------------

    def create_resource(self, config: dict[str, Any]) -> Resource:
        options = parse_config(SqliteConfig, config, TYPE)
        resource_id = f"{TYPE}-{uuid.uuid4().hex}"
        base = self.context.resource_dir(resource_id)
        state = _State(config=options)
        try:
            with self._connect(base / DB_FILE, state.config) as db:
                if options.setup:
                    db.executescript(options.setup)
        except sqlite3.Error as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise UsageError(f"sqlite setup script failed: {exc}") from exc
        try:
            write_state(base, state)
            self.commit_version(resource_id)
        except BaseException:  # a full disk, say: leave nothing behind that no row names
            shutil.rmtree(base, ignore_errors=True)
            raise
        return Resource(id=resource_id, name=TYPE, type=TYPE, config=options.model_dump(mode="json"))

    def destroy_resource(self, resource_id: str) -> None:
        shutil.rmtree(self._dir(resource_id), ignore_errors=True)

    # -- versions ----------------------------------------------------------------------

    def get_version(self, resource_id: str) -> str:
        state = read_state(self._dir(resource_id), _State)
        if state.version is None:
            raise UsageError(f"resource {resource_id} has no version yet")
        return state.version

    def commit_version(self, resource_id: str) -> str:
        base = self._dir(resource_id)
        state = read_state(base, _State)
        path = base / DB_FILE
        if state.version is not None and not state.changed and state.stat == _stat(path):
            return state.version
        data = self._backup_bytes(path, base)
        digest = ids.digest_bytes(data)
        if digest != state.version:
            with self.context.store.write():
                self.context.store.put_blob(data)
                self.context.store.add_refs(BLOB_OWNER, [digest])
        state.version, state.changed, state.stat = digest, False, _stat(path)
        write_state(base, state)
        return digest

    def load_version(self, resource_id: str, version_id: str) -> None:
        base = self._dir(resource_id)
        state = read_state(base, _State)
        if not ids.is_digest(version_id):
            raise UsageError(f"{version_id!r} is not a sqlite version", hint="versions are sha256: digests")
        try:
            data = self.context.store.get_blob(version_id)
        except StoreError as exc:
            raise UsageError(f"unknown sqlite version {version_id}") from exc
        fd, tmp = tempfile.mkstemp(dir=base, prefix=".load-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            source = sqlite3.connect(tmp)
            target = sqlite3.connect(base / DB_FILE)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
        finally:
            Path(tmp).unlink(missing_ok=True)
        state.version, state.changed, state.stat = version_id, False, _stat(base / DB_FILE)
        write_state(base, state)

    def _backup_bytes(self, path: Path, base: Path) -> bytes:
        fd, tmp = tempfile.mkstemp(dir=base, prefix=".backup-")
        os.close(fd)
        try:
            source = sqlite3.connect(path)
            target = sqlite3.connect(tmp)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
            return Path(tmp).read_bytes()
        finally:
            Path(tmp).unlink(missing_ok=True)

    # -- tools -------------------------------------------------------------------------

    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        return list(TOOLS)

    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        base = self._dir(resource_id)
        state = read_state(base, _State)
        path = base / DB_FILE
        if tool_name == "schema":
            if kwargs:
                raise ToolError("schema takes no arguments")
            return self._query(path, state.config, "SELECT type, name, sql FROM sqlite_schema WHERE sql NOT NULL")
        if tool_name not in ("query", "execute"):
            raise ToolError(f"sqlite has no tool {tool_name!r}", hint="tools: query, execute, schema")
        sql, params = _arguments(tool_name, kwargs)
        if tool_name == "query":
            return self._query(path, state.config, sql, params)
        if not state.changed:
            state.changed = True
            write_state(base, state)
        return self._execute(path, state.config, sql, params)

    def _query(self, path: Path, config: SqliteConfig, sql: str, params: Any = None) -> dict[str, Any]:
        with self._connect(path, config, read_only=True) as db, _translated("query", config):
            cursor = db.execute(sql, params if params is not None else ())
            return _rows(cursor, config.max_rows, config.max_output)

    def _execute(self, path: Path, config: SqliteConfig, sql: str, params: Any) -> dict[str, Any]:
        with self._connect(path, config) as db, _translated("execute", config):
            before = db.total_changes
            try:
                cursor = db.execute(sql, params if params is not None else ())
            except sqlite3.ProgrammingError as exc:
                if params is not None or "one statement at a time" not in str(exc):
                    raise
                db.executescript(sql)  # a script: several statements, no placeholders
                return {"changes": db.total_changes - before}
            result: dict[str, Any] = {}
            if cursor.description is not None:
                result = _rows(cursor, config.max_rows, config.max_output)
            result["changes"] = db.total_changes - before
            if cursor.lastrowid:
                result["last_row_id"] = cursor.lastrowid
            return result

    @contextlib.contextmanager
    def _connect(self, path: Path, config: SqliteConfig, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection that cannot attach other files and gives up after the time-out."""
        if read_only:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        else:
            db = sqlite3.connect(path, isolation_level=None)
        try:
            db.set_authorizer(_authorize)
            deadline = time.monotonic() + config.timeout
            db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            yield db
        finally:
            db.close()


def _authorize(action: int, *_args: object) -> int:
    return sqlite3.SQLITE_DENY if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) else sqlite3.SQLITE_OK


@contextlib.contextmanager
def _translated(tool: str, config: SqliteConfig) -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        if str(exc) == "interrupted":
            raise ToolError(f"{tool}: stopped after {config.timeout:g} s", hint="simplify the statement") from exc
        raise ToolError(f"{tool}: {_sqlite_message(exc)}") from exc
    except (sqlite3.Error, ValueError, OverflowError) as exc:
        raise ToolError(f"{tool}: {_sqlite_message(exc)}") from exc


def _sqlite_message(exc: Exception) -> str:
    text = str(exc)
    if text in ("not authorized", "authorization denied"):
        return "not authorized: a sqlite resource cannot attach other database files or load extensions"
    if "readonly database" in text:
        return "query is read-only; use execute to change the database"
    return text


def _arguments(tool: str, kwargs: dict[str, Any]) -> tuple[str, Any]:
    unknown = set(kwargs) - {"sql", "params"}
    if unknown or "sql" not in kwargs:
        raise ToolError(f"{tool} takes sql and optional params, got {', '.join(sorted(kwargs)) or 'nothing'}")
    sql, params = kwargs["sql"], kwargs.get("params")
    if not isinstance(sql, str) or not sql.strip():
        raise ToolError(f"{tool}: sql must be a non-empty string")
    if params is not None and not isinstance(params, list | dict):
        raise ToolError(f"{tool}: params must be a list or an object")
    return sql, params


def _rows(cursor: sqlite3.Cursor, limit: int, budget: int) -> dict[str, Any]:
    """At most ``limit`` rows and about ``budget`` characters of values, read one row at a time.

    A value that does not fit is cut with a marker; rows after the budget runs
    out are dropped and ``truncated`` says so, so a flood (``SELECT
    zeroblob(1e9)``, a million-row join) costs neither memory nor the model's context.
    """
    columns = [d[0] for d in cursor.description or ()]
    rows: list[list[Any]] = []
    truncated = False
    while (row := cursor.fetchone()) is not None:
        if len(rows) == limit or budget <= 0:
            truncated = True
            break
        values = []
        for value in row:
            shown, budget = _shown(value, budget)
            values.append(shown)
        rows.append(values)
    return {"columns": columns, "rows": rows, "truncated": truncated}


def _shown(value: Any, budget: int) -> tuple[Any, int]:
    """A value as JSON, cut to fit ``budget`` characters; and the budget left."""
    room = max(budget, 0)
    if isinstance(value, bytes):
        keep = room * 3 // 4  # base64 takes four characters for three bytes
        shown: dict[str, Any] = {"base64": base64.b64encode(value[:keep]).decode("ascii")}
        if len(value) > keep:
            shown["cut_bytes"] = len(value) - keep
        return shown, budget - len(shown["base64"])
    if isinstance(value, str) and len(value) > room:
        return f"{value[:room]}[… {len(value) - room} more characters cut]", 0
    return _json_value(value), budget - (len(value) if isinstance(value, str) else 8)


def _json_value(value: Any) -> Any:
    """SQLite numbers and text as JSON: infinities become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_size, info.st_mtime_ns
