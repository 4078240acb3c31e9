"""sqlite beyond tools and loads: versions diffed by schema and rows, moved between homes, and collected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from domarkx import ids
from domarkx.data.store import Store
from domarkx.errors import StoreError
from domarkx.workspace.plugin import Layer, PluginContext
from domarkx.workspace.plugins.sqlite import BLOB_OWNER, SqlitePlugin

SETUP = """
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB);
CREATE TABLE tags (name TEXT PRIMARY KEY, uses INTEGER) WITHOUT ROWID;
CREATE VIRTUAL TABLE search USING fts5(text);
INSERT INTO notes VALUES (1, 'one', NULL), (2, 'two', NULL);
INSERT INTO tags VALUES ('a', 1);
"""


def plugin_in(home: Path) -> SqlitePlugin:
    store = Store(home)
    return SqlitePlugin(PluginContext(home=store.home, store=store, plugin_type="sqlite"))


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[SqlitePlugin]:
    found = plugin_in(tmp_path / "home")
    yield found
    found.context.store.close()


def changed(plugin: SqlitePlugin, rid: str, sql: str) -> str:
    plugin.execute_tool(rid, "execute", sql=sql)
    return plugin.commit_version(rid)


def test_diff_lists_schema_and_row_changes_by_key(plugin: SqlitePlugin) -> None:
    rid = plugin.create_resource({"setup": SETUP}).id
    before = plugin.get_version(rid)
    after = changed(
        plugin,
        rid,
        "UPDATE notes SET body = 'TWO', data = X'00ff' WHERE id = 2; DELETE FROM notes WHERE id = 1;"
        " INSERT INTO notes VALUES (3, 'three', NULL); UPDATE tags SET uses = 2 WHERE name = 'a';"
        " INSERT INTO tags VALUES ('caf\u00e9', 0); CREATE TABLE fresh (v); INSERT INTO fresh VALUES (7);"
        " CREATE INDEX by_body ON notes(body); INSERT INTO search VALUES ('hello');",
    )

    found = plugin.diff_versions(before, after)

    shown = {(c.kind, c.name, c.status) for c in found.changes}
    assert shown == {
        ("schema", "by_body", "added"),
        ("schema", "fresh", "added"),
        ("row", "notes:1", "removed"),
        ("row", "notes:2", "modified"),
        ("row", "notes:3", "added"),
        ("row", "tags:'a'", "modified"),
        ("row", "tags:'café'", "added"),
        ("row", "fresh:1", "added"),
    }
    by_name = {c.name: c for c in found.changes}
    assert by_name["notes:2"].detail == "- id=2, body='two', data=None\n+ id=2, body='TWO', data=x'00ff'\n"
    assert found.notes == ["search: a virtual table; its rows were not compared"]
    assert plugin.diff_versions(after, after).changes == []


def test_a_changed_table_definition_is_a_schema_change_with_a_note(plugin: SqlitePlugin) -> None:
    rid = plugin.create_resource({"setup": SETUP}).id
    before = plugin.get_version(rid)
    after = changed(plugin, rid, "ALTER TABLE notes ADD COLUMN extra TEXT")

    found = plugin.diff_versions(before, after)

    assert [(c.kind, c.name, c.status) for c in found.changes] == [("schema", "notes", "modified")]
    assert "notes: its definition changed; its rows were not compared" in found.notes


def test_versions_move_to_another_home_as_one_layer_each(plugin: SqlitePlugin, tmp_path: Path) -> None:
    rid = plugin.create_resource({"setup": SETUP}).id
    first = plugin.get_version(rid)
    second = changed(plugin, rid, "INSERT INTO notes VALUES (9, 'nine', NULL)")
    out = tmp_path / "layers"
    out.mkdir()

    layers = plugin.export_versions([first, second], out, have=[first])
    assert [layer.digest for layer in layers] == [second]
    receiver = plugin_in(tmp_path / "receiver")
    assert receiver.missing_versions([second]) == {second}
    receiver.import_versions(layers)
    receiver.import_versions(layers)  # already here
    assert receiver.missing_versions([second]) == set()
    rid2 = receiver.create_resource({}).id
    receiver.load_version(rid2, second)
    assert receiver.execute_tool(rid2, "query", sql="SELECT body FROM notes WHERE id = 9")["rows"] == [["nine"]]


def test_a_layer_that_is_not_the_database_it_names_adds_nothing(plugin: SqlitePlugin, tmp_path: Path) -> None:
    rid = plugin.create_resource({"setup": SETUP}).id
    version = plugin.get_version(rid)
    out = tmp_path / "layers"
    out.mkdir()
    (good,) = plugin.export_versions([version], out)
    garbage = out / "garbage.sqlite"
    garbage.write_bytes(b"SQLite format 3\0" + b"\xff" * 4080)
    forged = ids.digest_bytes(garbage.read_bytes())
    receiver = plugin_in(tmp_path / "receiver")

    bad = [
        Layer(good.media_type, garbage, forged, 4096, {"io.domarkx.version": forged}),  # not a sound database
        Layer(good.media_type, good.path, forged, good.size, {"io.domarkx.version": forged}),  # other bytes
        Layer("text/plain", good.path, good.digest, good.size, dict(good.annotations)),
    ]
    for layer in bad:
        with pytest.raises(StoreError):
            receiver.import_versions([good, layer])
    assert receiver.missing_versions([version]) == {version}
    assert receiver.context.store.owned(BLOB_OWNER) == set()


def test_collect_lets_go_of_versions_nothing_links(plugin: SqlitePlugin) -> None:
    rid = plugin.create_resource({"setup": SETUP}).id
    first = plugin.get_version(rid)
    second = changed(plugin, rid, "INSERT INTO notes VALUES (9, 'nine', NULL)")
    store = plugin.context.store

    assert plugin.collect({second}) == 0  # the blob sweep frees the bytes
    assert store.owned(BLOB_OWNER) == {second}
    count, freed = store.prune()
    assert count == 1 and freed > 0
    assert plugin.missing_versions([first, second]) == {first}
    assert plugin.missing_versions(["not-a-digest"]) == {"not-a-digest"}
