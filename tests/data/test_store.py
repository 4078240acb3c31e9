"""Store: migrations, content-addressed blobs, references, tags and pruning."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domarkx import ids
from domarkx.data import store as store_module
from domarkx.data.names import validate_tag
from domarkx.data.schema import MIGRATIONS
from domarkx.data.store import Store, default_home
from domarkx.errors import AmbiguousReference, ReferenceNotFound, StoreError, UsageError

# The schema a brand-new store has. A migration that changes it must change this too.
NEW_SCHEMA = [
    "CREATE TABLE blob_refs ( owner TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (owner, digest) )",
    "CREATE INDEX blob_refs_by_digest ON blob_refs(digest)",
    "CREATE TABLE build_cache ( key TEXT PRIMARY KEY, parent TEXT NOT NULL REFERENCES workspace_versions(id)"
    " ON DELETE CASCADE, result TEXT NOT NULL REFERENCES workspace_versions(id) ON DELETE CASCADE,"
    " steps TEXT NOT NULL, created REAL NOT NULL )",
    "CREATE INDEX build_cache_by_parent ON build_cache(parent)",
    "CREATE INDEX build_cache_by_result ON build_cache(result)",
    "CREATE TABLE events ( instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL, messages INTEGER NOT NULL, kind TEXT NOT NULL, resource TEXT NOT NULL,"
    " detail TEXT NOT NULL, before TEXT, version TEXT NOT NULL, created REAL NOT NULL,"
    " PRIMARY KEY (instance_id, seq) )",
    'CREATE TABLE "instances" ( id TEXT PRIMARY KEY, name TEXT UNIQUE, snapshot_id TEXT NOT NULL'
    " REFERENCES snapshots(id), workspace_id TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL,"
    " head_version TEXT, initial_version TEXT , parent_id TEXT, parent_at INTEGER,"
    " hidden INTEGER NOT NULL DEFAULT 0, settings TEXT)",
    "CREATE INDEX instances_by_snapshot ON instances(snapshot_id)",
    "CREATE TABLE messages ( instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,"
    " idx INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (instance_id, idx) )",
    "CREATE TABLE resources ( id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id)"
    " ON DELETE CASCADE, position INTEGER NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,"
    " config TEXT NOT NULL, version TEXT, touched INTEGER NOT NULL DEFAULT 1, location TEXT,"
    " UNIQUE (workspace_id, name) )",
    "CREATE TABLE snapshots ( id TEXT PRIMARY KEY, manifest TEXT NOT NULL, document TEXT NOT NULL,"
    " structure TEXT NOT NULL, title TEXT, source TEXT, messages INTEGER NOT NULL, size INTEGER NOT NULL,"
    " created REAL NOT NULL )",
    "CREATE TABLE tags ( name TEXT PRIMARY KEY, snapshot_id TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE )",
    "CREATE INDEX tags_by_snapshot ON tags(snapshot_id)",
    "CREATE TABLE workspace_versions ( id TEXT PRIMARY KEY, versions TEXT NOT NULL, types TEXT NOT NULL,"
    " created REAL NOT NULL )",
    "CREATE TABLE workspaces ( id TEXT PRIMARY KEY, config TEXT NOT NULL, version TEXT,"
    " created REAL NOT NULL , pending INTEGER NOT NULL DEFAULT 0)",
]


def schema(db: sqlite3.Connection) -> list[str]:
    rows = db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
    return [" ".join(sql.split()) for (sql,) in rows]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "home") as opened:
        yield opened


def add_snapshot(store: Store, snapshot_id: str) -> None:
    """A bare snapshots row: enough for reference resolution."""
    with store.write() as db:
        db.execute(
            "INSERT INTO snapshots(id, manifest, document, structure, messages, size, created)"
            " VALUES (?, '{}', '', '', 0, 0, 0)",
            (snapshot_id,),
        )


def hex_id(first: str) -> str:
    return ids.PREFIX + (first + "0" * 64)[:64]


# -- migrations -----------------------------------------------------------------


def test_new_store_schema_is_pinned(store: Store) -> None:
    assert schema(store.db) == NEW_SCHEMA
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_new_store_layout(store: Store) -> None:
    assert sorted(p.name for p in store.home.iterdir() if not p.name.startswith("store.db")) == [
        "blobs",
        "tmp",
    ]
    assert store.blobs == store.home / "blobs" / "sha256"


@pytest.mark.parametrize("start", range(len(MIGRATIONS)))
def test_upgrade_from_every_older_schema(tmp_path: Path, start: int) -> None:
    home = tmp_path / "home"
    home.mkdir()
    db = sqlite3.connect(home / "store.db", isolation_level=None)
    for number, migration in enumerate(MIGRATIONS[:start], start=1):
        migration(db)
        db.execute(f"PRAGMA user_version = {number}")
    if start >= 1:
        db.execute(
            "INSERT INTO snapshots(id, manifest, document, structure, messages, size, created)"
            " VALUES (?, '{}', '', '', 0, 0, 0)",
            (hex_id("abcd"),),
        )
    db.close()

    with Store(home) as upgraded:
        assert schema(upgraded.db) == NEW_SCHEMA
        assert upgraded.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        kept = [row[0] for row in upgraded.db.execute("SELECT id FROM snapshots")]
    assert kept == ([hex_id("abcd")] if start >= 1 else [])


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    Store(tmp_path).close()
    with Store(tmp_path) as again:
        assert schema(again.db) == NEW_SCHEMA


def test_a_failing_migration_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("disk on fire")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(StoreError, match="disk on fire"):
        Store(tmp_path)
    monkeypatch.undo()

    with Store(tmp_path) as fixed:
        assert schema(fixed.db) == NEW_SCHEMA


def test_store_from_a_newer_domarkx_is_refused(tmp_path: Path) -> None:
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "store.db")
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()

    with pytest.raises(StoreError, match="newer domarkx") as info:
        Store(tmp_path)
    assert info.value.hint == "upgrade domarkx"


def test_unopenable_home_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(StoreError, match="cannot open the store") as info:
        Store(blocker / "home")
    assert info.value.hint == "set DOMARKX_HOME to a writable directory"


def test_damaged_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "store.db").write_bytes(b"this is not sqlite" * 100)

    with pytest.raises(StoreError):
        Store(tmp_path)


def test_default_home_follows_domarkx_home(domarkx_home: Path) -> None:
    assert default_home() == domarkx_home
    with Store() as opened:
        assert opened.home == domarkx_home


def test_write_rolls_back_on_error(store: Store) -> None:
    def insert_then_fail() -> None:
        with store.write() as db:
            db.execute("INSERT INTO blob_refs(owner, digest) VALUES ('o', 'd')")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        insert_then_fail()

    assert store.db.execute("SELECT COUNT(*) FROM blob_refs").fetchone()[0] == 0


# -- blobs ----------------------------------------------------------------------


def blob_files(store: Store) -> list[Path]:
    return sorted(p for p in store.blobs.rglob("*") if p.is_file())


def test_put_blob_is_content_addressed_and_idempotent(store: Store) -> None:
    data = b"hello\x00world\n"
    with store.write():
        first = store.put_blob(data)
        second = store.put_blob(data)

    assert first == second == ids.PREFIX + hashlib.sha256(data).hexdigest()
    hexd = first.removeprefix(ids.PREFIX)
    assert blob_files(store) == [store.blobs / hexd[:2] / hexd[2:]]
    assert store.get_blob(first) == data
    assert list(store.tmp.iterdir()) == []


def test_empty_blob(store: Store) -> None:
    with store.write():
        digest = store.put_blob(b"")

    assert store.get_blob(digest) == b""
    assert store.verify_blob(digest)


def test_failed_write_leaves_neither_blob_nor_temp_file(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StoreError, match="No space left"), store.write():
        store.put_blob(b"payload")

    assert blob_files(store) == []
    assert list(store.tmp.iterdir()) == []


def test_missing_blob_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="missing") as info:
        store.get_blob(ids.digest_bytes(b"never stored"))
    assert info.value.hint == "run `domarkx doctor`"


def test_verify_blob_detects_corruption_and_absence(store: Store) -> None:
    with store.write():
        digest = store.put_blob(b"original bytes")
    assert store.verify_blob(digest)

    path = store.blob_path(digest)
    path.write_bytes(b"tampered bytes")
    assert not store.verify_blob(digest)

    path.unlink()
    assert not store.verify_blob(digest)


def test_verify_blob_reads_large_blobs_in_chunks(store: Store) -> None:
    data = os.urandom(3 * (1 << 20) + 17)
    with store.write():
        digest = store.put_blob(data)

    assert store.verify_blob(digest)


# -- references and pruning -----------------------------------------------------


def test_prune_removes_only_unreferenced_blobs(store: Store) -> None:
    with store.write():
        kept = store.put_blob(b"kept")
        shared = store.put_blob(b"shared")
        dropped = store.put_blob(b"dropped!")
        store.add_refs("owner-a", [kept, shared])
        store.add_refs("owner-b", [shared])
    (store.tmp / "stale-partial-write").write_bytes(b"x")

    assert store.prune(dry_run=True) == (1, len(b"dropped!"))
    assert store.verify_blob(dropped)
    assert (store.tmp / "stale-partial-write").exists()

    assert store.prune() == (1, len(b"dropped!"))
    assert not store.blob_path(dropped).exists()
    assert store.get_blob(kept) == b"kept"
    assert list(store.tmp.iterdir()) == []

    with store.write():
        store.drop_refs("owner-a")
    assert store.prune() == (1, len(b"kept"))
    assert store.get_blob(shared) == b"shared"
    assert store.prune() == (0, 0)


def test_add_refs_is_idempotent(store: Store) -> None:
    with store.write():
        digest = store.put_blob(b"x")
        store.add_refs("o", [digest, digest])
        store.add_refs("o", [digest])

    assert store.db.execute("SELECT COUNT(*) FROM blob_refs").fetchone()[0] == 1


# -- resolving references -------------------------------------------------------


def test_resolve_full_id_prefix_and_tag(store: Store) -> None:
    target = hex_id("abcdef12")
    add_snapshot(store, target)
    add_snapshot(store, hex_id("ffff"))
    store.snapshots.tag(target, "demo")

    assert store.snapshots.resolve(target) == target
    assert store.snapshots.resolve(target.removeprefix(ids.PREFIX)) == target
    assert store.snapshots.resolve("abcd") == target
    assert store.snapshots.resolve("ABCDEF") == target
    assert store.snapshots.resolve("sha256:abcde") == target
    assert store.snapshots.resolve("demo") == target


def test_resolve_ambiguous_prefix(store: Store) -> None:
    add_snapshot(store, hex_id("abcd1"))
    add_snapshot(store, hex_id("abcd2"))

    with pytest.raises(AmbiguousReference) as info:
        store.snapshots.resolve("abcd")
    assert "abcd10000000" in info.value.message
    assert "abcd20000000" in info.value.message
    assert info.value.hint == "give more characters of the id"
    assert store.snapshots.resolve("abcd2") == hex_id("abcd2")


@pytest.mark.parametrize("ref", ["abc", "a", "", "sha256:ab", "not-a-tag", "abcz"])
def test_resolve_too_short_or_not_hex(store: Store, ref: str) -> None:
    add_snapshot(store, hex_id("abcd"))

    with pytest.raises(ReferenceNotFound) as info:
        store.snapshots.resolve(ref)
    assert info.value.exit_code == 2
    assert info.value.hint is not None
    assert "at least 4 hex characters" in info.value.hint


def test_resolve_unknown_prefix(store: Store) -> None:
    add_snapshot(store, hex_id("abcd"))

    with pytest.raises(ReferenceNotFound, match="no snapshot matches 'beef'"):
        store.snapshots.resolve("beef")


@pytest.mark.parametrize("tag", ["v1", "demo", "release/1.0", "my_tag-2", "x:y", "deadbeefz"])
def test_valid_tags(tag: str) -> None:
    validate_tag(tag)


@pytest.mark.parametrize("tag", ["", "abcd", "0123", "deadbeef", "sha256:x", "a b", "tag!", "x" * 129])
def test_invalid_tags_are_refused(store: Store, tag: str) -> None:
    add_snapshot(store, hex_id("abcd"))

    with pytest.raises(UsageError, match="invalid tag") as info:
        store.snapshots.tag(hex_id("abcd"), tag)
    assert info.value.hint is not None
    assert store.db.execute("SELECT COUNT(*) FROM tags").fetchone()[0] == 0


def test_tag_moves_to_the_latest_snapshot(store: Store) -> None:
    first, second = hex_id("1111"), hex_id("2222")
    add_snapshot(store, first)
    add_snapshot(store, second)

    store.snapshots.tag(first, "current")
    store.snapshots.tag(first, "old")
    assert store.snapshots.resolve("current") == first
    store.snapshots.tag(second, "current")

    assert store.snapshots.resolve("current") == second
    assert store.snapshots.resolve("old") == first
    rows = store.db.execute("SELECT name, snapshot_id FROM tags ORDER BY name").fetchall()
    assert [tuple(r) for r in rows] == [("current", second), ("old", first)]


# -- property: references keep blobs alive --------------------------------------

_OWNERS = st.sampled_from(["snap-a", "snap-b", "inst-c"])
_OPS = st.one_of(
    st.tuples(st.just("put"), st.binary(max_size=64), st.none() | _OWNERS),
    st.tuples(st.just("ref"), _OWNERS, st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("drop"), _OWNERS),
    st.tuples(st.just("prune"), st.booleans()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_OPS, max_size=25))
def test_referenced_blobs_survive_any_sequence(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as home, Store(Path(home)) as store:
        stored: list[str] = []  # digests put so far, in order (referencing by index)
        refs: dict[str, set[str]] = {}
        for op in ops:
            kind = op[0]
            if kind == "put":
                data, owner = op[1], op[2]
                assert isinstance(data, bytes)
                with store.write():
                    digest = store.put_blob(data)
                    if isinstance(owner, str):
                        store.add_refs(owner, [digest])
                        refs.setdefault(owner, set()).add(digest)
                assert digest == ids.digest_bytes(data)
                stored.append(digest)
            elif kind == "ref" and stored:
                owner, index = op[1], op[2]
                assert isinstance(owner, str)
                assert isinstance(index, int)
                digest = stored[index % len(stored)]
                if store.blob_path(digest).exists():  # only what is still there can be referenced
                    with store.write():
                        store.add_refs(owner, [digest])
                    refs.setdefault(owner, set()).add(digest)
            elif kind == "drop":
                owner = op[1]
                assert isinstance(owner, str)
                with store.write():
                    store.drop_refs(owner)
                refs.pop(owner, None)
            elif kind == "prune":
                store.prune(dry_run=bool(op[1]))
                if not op[1]:
                    live = set().union(*refs.values()) if refs else set()
                    on_disk = {ids.PREFIX + p.parent.name + p.name for p in blob_files(store)}
                    assert on_disk == live
            for digest in set().union(*refs.values()) if refs else set():
                assert store.verify_blob(digest)
                assert ids.digest_bytes(store.get_blob(digest)) == digest


def test_rebuilding_instances_keeps_their_messages_and_orphans(tmp_path: Path) -> None:
    """The migration that adds the instances → snapshots key rebuilds the table: nothing cascades away."""
    home = tmp_path / "home"
    home.mkdir()
    db = sqlite3.connect(home / "store.db", isolation_level=None)
    db.execute("PRAGMA foreign_keys=ON")  # as an older domarkx had it
    before = 5
    for number, migration in enumerate(MIGRATIONS[:before], start=1):
        migration(db)
        db.execute(f"PRAGMA user_version = {number}")
    db.execute(
        "INSERT INTO snapshots(id, manifest, document, structure, messages, size, created)"
        " VALUES (?, '{}', '', '', 0, 0, 0)",
        (hex_id("abcd"),),
    )
    for instance_id, snapshot_id in (("kept", hex_id("abcd")), ("orphan", hex_id("dead"))):
        db.execute(
            "INSERT INTO instances(id, snapshot_id, workspace_id, status, created) VALUES (?, ?, 'w', 'running', 0)",
            (instance_id, snapshot_id),
        )
        db.execute("INSERT INTO messages(instance_id, idx, body) VALUES (?, 0, '{}')", (instance_id,))
    db.close()

    with Store(home) as upgraded:
        assert upgraded.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        kept = upgraded.db.execute("SELECT instance_id FROM messages ORDER BY instance_id").fetchall()
        assert [r[0] for r in kept] == ["kept", "orphan"]
        with pytest.raises(StoreError, match="refused a change"), upgraded.write() as write:
            write.execute(
                "INSERT INTO instances(id, snapshot_id, workspace_id, status, created)"
                " VALUES ('new', ?, 'w', 'running', 0)",
                (hex_id("beef"),),
            )


def test_commands_opening_a_new_home_together_all_get_it(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL at once while another connection makes it: the store waits instead."""
    import threading

    for attempt in range(60):  # the race is lost about one time in ten
        home = tmp_path / str(attempt)
        errors: list[BaseException] = []

        def open_and_write(home: Path = home, errors: list[BaseException] = errors) -> None:
            try:
                with Store(home) as store, store.write():
                    pass
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_and_write) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"attempt {attempt}: {errors[0]!r}"
