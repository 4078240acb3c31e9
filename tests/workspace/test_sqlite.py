"""sqlite: query/execute tools, versions through the backup API and the blob store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domarkx import ids
from domarkx.data.store import Store
from domarkx.errors import UsageError
from domarkx.workspace.plugin import PluginContext, ToolError
from domarkx.workspace.plugins.sqlite import BLOB_OWNER, SqlitePlugin

SETUP = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB);"


@pytest.fixture
def store() -> Iterator[Store]:
    with Store() as opened:
        yield opened


@pytest.fixture
def plugin(store: Store) -> SqlitePlugin:
    return SqlitePlugin(PluginContext(home=store.home, store=store))


def rows(plugin: SqlitePlugin, rid: str, sql: str = "SELECT * FROM notes ORDER BY id") -> list[list[Any]]:
    result: list[list[Any]] = plugin.execute_tool(rid, "query", sql=sql)["rows"]
    return result


def dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return list(db.iterdump())


def test_round_trip_restores_rows_and_schema(plugin: SqlitePlugin) -> None:
    rid = plugin.create_resource({"setup": SETUP}).id
    plugin.execute_tool(rid, "execute", sql="INSERT INTO notes(body) VALUES (?)", params=["one"])
    plugin.execute_tool(rid, "execute", sql="INSERT INTO notes(body, data) VALUES (:b, X'00ff')", params={"b": "two"})
    first_dump = dump(plugin.database(rid))
    first = plugin.commit_version(rid)

    plugin.execute_tool(
        rid, "execute", sql="DELETE FROM notes WHERE id = 1; CREATE TABLE extra(x); INSERT INTO extra VALUES (1);"
    )
    plugin.execute_tool(rid, "execute", sql="UPDATE notes SET body = 'changed'")
    second_dump = dump(plugin.database(rid))
    second = plugin.commit_version(rid)
    assert second != first

    plugin.execute_tool(rid, "execute", sql="DROP TABLE notes")  # uncommitted, discarded by load
    plugin.load_version(rid, first)
    assert dump(plugin.database(rid)) == first_dump
    assert rows(plugin, rid) == [[1, "one", None], [2, "two", {"base64": "AP8="}]]
    plugin.load_version(rid, second)
    assert dump(plugin.database(rid)) == second_dump


def test_versions_are_blobs_in_the_store(plugin: SqlitePlugin, store: Store) -> None:
    rid = plugin.create_resource({"setup": SETUP}).id
    version = plugin.get_version(rid)
    assert ids.is_digest(version)
    assert store.verify_blob(version)
    assert store.db.execute("SELECT owner FROM blob_refs WHERE digest = ?", (version,)).fetchone()[0] == BLOB_OWNER
    assert store.prune() == (0, 0)
    assert store.verify_blob(version)


def test_commit_is_idempotent(plugin: SqlitePlugin) -> None:
    rid = plugin.create_resource({"setup": SETUP}).id
    initial = plugin.get_version(rid)
    assert plugin.commit_version(rid) == initial
    rows(plugin, rid)
    plugin.execute_tool(rid, "schema")
    assert plugin.commit_version(rid) == initial
    plugin.execute_tool(rid, "execute", sql="SELECT count(*) FROM notes")  # execute that writes nothing
    assert plugin.commit_version(rid) == initial
    plugin.execute_tool(rid, "execute", sql="INSERT INTO notes(body) VALUES ('x')")
    changed = plugin.commit_version(rid)
    assert changed != initial
    plugin.load_version(rid, initial)
    assert plugin.commit_version(rid) == initial
    plugin.execute_tool(rid, "execute", sql="SELECT 1")  # forces a backup of the restored file
    assert plugin.commit_version(rid) == initial


def test_a_version_loads_into_another_resource(plugin: SqlitePlugin) -> None:
    a = plugin.create_resource({"setup": SETUP}).id
    b = plugin.create_resource({}).id
    plugin.execute_tool(a, "execute", sql="INSERT INTO notes(body) VALUES ('from a')")
    version = plugin.commit_version(a)
    plugin.load_version(b, version)
    assert rows(plugin, b) == [[1, "from a", None]]
    plugin.execute_tool(b, "execute", sql="SELECT 1")
    assert plugin.commit_version(b) == version


def test_query_is_read_only(plugin: SqlitePlugin) -> None:
    rid = plugin.create_resource({"setup": SETUP}).id
    with pytest.raises(ToolError, match="read-only; use execute"):
        plugin.execute_tool(rid, "query", sql="INSERT INTO notes(body) VALUES ('x')")
    assert rows(plugin, rid) == []


def test_execute_returns_changes_and_rows(plugin: SqlitePlugin) -> None:
    rid = plugin.create_resource({"setup": SETUP}).id
    assert plugin.execute_tool(rid, "execute", sql="INSERT INTO notes(body) VALUES ('a'), ('b')") == {
        "changes": 2,
        "last_row_id": 2,
    }
    assert plugin.execute_tool(rid, "execute", sql="DELETE FROM notes WHERE id = 1 RETURNING body") == {
        "columns": ["body"],
        "rows": [["a"]],
        "truncated": False,
        "changes": 1,
    }
    script = "INSERT INTO notes(body) VALUES ('c'); INSERT INTO notes(body) VALUES ('d');"
    assert plugin.execute_tool(rid, "execute", sql=script) == {"changes": 2}


def test_query_rows_are_capped(plugin: SqlitePlugin) -> None:
    rid = plugin.create_resource({"max_rows": 3}).id
    result = plugin.execute_tool(
        rid, "query", sql="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10) SELECT x FROM c"
    )
    assert result == {"columns": ["x"], "rows": [[1], [2], [3]], "truncated": True}


def test_runaway_statements_are_stopped(plugin: SqlitePlugin) -> None:
    rid = plugin.create_resource({"timeout": 0.2}).id
    forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    with pytest.raises(ToolError, match=r"stopped after 0\.2 s"):
        plugin.execute_tool(rid, "query", sql=forever)


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '{outside}' AS other",
        "VACUUM INTO '{outside}'",
        "CREATE TABLE t(x); ATTACH '{outside}' AS o; CREATE TABLE o.t(x);",
    ],
)
def test_statements_cannot_reach_other_files(plugin: SqlitePlugin, tmp_path: Path, sql: str) -> None:
    outside = tmp_path / "outside.db"
    rid = plugin.create_resource({}).id
    with pytest.raises(ToolError, match="cannot attach other database files"):
        plugin.execute_tool(rid, "execute", sql=sql.format(outside=outside))
    assert not outside.exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"sql": ""}, "non-empty"),
        ({"sql": "SELECT ?", "params": "x"}, "list or an object"),
        ({"query": "SELECT 1"}, "takes sql"),
        ({"sql": "SELEKT 1"}, "syntax error"),
        ({"sql": "SELECT ?", "params": [1, 2]}, "bindings"),
    ],
)
def test_bad_calls_are_tool_errors(plugin: SqlitePlugin, arguments: dict[str, Any], message: str) -> None:
    rid = plugin.create_resource({}).id
    with pytest.raises(ToolError, match=message):
        plugin.execute_tool(rid, "query", **arguments)


def test_unknown_tool_and_schema_arguments(plugin: SqlitePlugin) -> None:
    rid = plugin.create_resource({"setup": SETUP}).id
    with pytest.raises(ToolError, match="no tool 'drop'"):
        plugin.execute_tool(rid, "drop")
    with pytest.raises(ToolError, match="no arguments"):
        plugin.execute_tool(rid, "schema", table="notes")
    assert plugin.execute_tool(rid, "schema")["rows"] == [["table", "notes", SETUP.rstrip(";")]]


def test_bad_config_and_versions_are_usage_errors(plugin: SqlitePlugin) -> None:
    with pytest.raises(UsageError, match="max_row: unknown option"):
        plugin.create_resource({"max_row": 5})
    with pytest.raises(UsageError, match="setup script failed"):
        plugin.create_resource({"setup": "CREATE TABLE"})
    rid = plugin.create_resource({}).id
    with pytest.raises(UsageError, match="not a sqlite version"):
        plugin.load_version(rid, "deadbeef")
    with pytest.raises(UsageError, match="unknown sqlite version"):
        plugin.load_version(rid, ids.digest_bytes(b"never stored"))


def test_destroy_removes_the_database_but_not_its_versions(plugin: SqlitePlugin) -> None:
    a = plugin.create_resource({"setup": SETUP}).id
    version = plugin.get_version(a)
    plugin.destroy_resource(a)
    assert not plugin.database(a).exists()
    b = plugin.create_resource({}).id
    plugin.load_version(b, version)
    assert rows(plugin, b) == []
