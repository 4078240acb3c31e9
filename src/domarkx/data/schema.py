"""The store's schema, as numbered migrations applied in order, each exactly once.

``PRAGMA user_version`` counts the migrations a database has had. New ones go
at the end of :data:`MIGRATIONS`; none is ever edited once released, and a test
pins the schema a new store gets (tests/data/test_store.py).

Migrations run with foreign-key enforcement off (SQLite's procedure for
rebuilding a table), inside one transaction with the ``user_version`` bump, so
a failed migration leaves the database as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def run_script(db: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated statements inside the caller's transaction.

    ``executescript`` would COMMIT first, splitting a migration from its
    ``user_version`` bump; executing statement by statement keeps them atomic.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""


def _m1_initial(db: sqlite3.Connection) -> None:
    run_script(
        db,
        """
        CREATE TABLE snapshots (
            id TEXT PRIMARY KEY,
            manifest TEXT NOT NULL,
            document TEXT NOT NULL,
            structure TEXT NOT NULL,
            title TEXT,
            source TEXT,
            messages INTEGER NOT NULL,
            size INTEGER NOT NULL,
            created REAL NOT NULL
        );
        CREATE TABLE tags (
            name TEXT PRIMARY KEY,
            snapshot_id TEXT NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE
        );
        CREATE INDEX tags_by_snapshot ON tags(snapshot_id);
        CREATE TABLE blob_refs (
            owner TEXT NOT NULL,
            digest TEXT NOT NULL,
            PRIMARY KEY (owner, digest)
        );
        CREATE INDEX blob_refs_by_digest ON blob_refs(digest);
        """,
    )


def _m2_instances(db: sqlite3.Connection) -> None:
    run_script(
        db,
        """
        CREATE TABLE instances (
            id TEXT PRIMARY KEY,
            name TEXT UNIQUE,
            snapshot_id TEXT NOT NULL,
            workspace_id TEXT NOT NULL,
            status TEXT NOT NULL,
            created REAL NOT NULL,
            head_version TEXT,
            initial_version TEXT
        );
        CREATE TABLE messages (
            instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (instance_id, idx)
        );
        """,
    )


def _m3_workspaces(db: sqlite3.Connection) -> None:
    """Workspaces, their resources, and the aggregated versions (see domarkx.workspace.manager)."""
    run_script(
        db,
        """
        CREATE TABLE workspaces (
            id TEXT PRIMARY KEY,
            config TEXT NOT NULL,
            version TEXT,
            created REAL NOT NULL
        );
        CREATE TABLE resources (
            id TEXT PRIMARY KEY,
            workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            config TEXT NOT NULL,
            version TEXT,
            touched INTEGER NOT NULL DEFAULT 1,
            UNIQUE (workspace_id, name)
        );
        CREATE TABLE workspace_versions (
            id TEXT PRIMARY KEY,
            versions TEXT NOT NULL,
            types TEXT NOT NULL,
            created REAL NOT NULL
        );
        """,
    )


def _m4_pending_workspaces(db: sqlite3.Connection) -> None:
    """``pending``: the workspace has no owner yet (an instance being created) or no longer (being removed).

    A process killed in between leaves it pending; ``domarkx doctor --repair`` removes it.
    """
    db.execute("ALTER TABLE workspaces ADD COLUMN pending INTEGER NOT NULL DEFAULT 0")


def _m5_resource_location(db: sqlite3.Connection) -> None:
    """Where a resource's tools work, as its plugin said when it was made.

    Kept in the row so ``instances inspect`` shows it without loading the plugin.
    """
    db.execute("ALTER TABLE resources ADD COLUMN location TEXT")


def _m6_instances_need_their_snapshot(db: sqlite3.Connection) -> None:
    """A foreign key from instances to snapshots, so no instance can outlive its snapshot.

    SQLite cannot add a constraint to a table, so the table is rebuilt. Rows of
    older stores whose snapshot is already gone are kept (``doctor`` reports them).
    """
    run_script(
        db,
        """
        CREATE TABLE instances_new (
            id TEXT PRIMARY KEY,
            name TEXT UNIQUE,
            snapshot_id TEXT NOT NULL REFERENCES snapshots(id),
            workspace_id TEXT NOT NULL,
            status TEXT NOT NULL,
            created REAL NOT NULL,
            head_version TEXT,
            initial_version TEXT
        );
        INSERT INTO instances_new SELECT id, name, snapshot_id, workspace_id, status, created,
            head_version, initial_version FROM instances;
        DROP TABLE instances;
        ALTER TABLE instances_new RENAME TO instances;
        CREATE INDEX instances_by_snapshot ON instances(snapshot_id);
        """,
    )


def _m7_fork_lineage(db: sqlite3.Connection) -> None:
    """Where an instance came from: the instance it was forked (or cut by ``reset``) from, at which message.

    ``hidden``: kept but not listed by default (the tail ``reset`` set aside).
    """
    run_script(
        db,
        """
        ALTER TABLE instances ADD COLUMN parent_id TEXT;
        ALTER TABLE instances ADD COLUMN parent_at INTEGER;
        ALTER TABLE instances ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
        """,
    )


def _m8_instance_settings(db: sqlite3.Connection) -> None:
    """``settings``: what an instance remembers for its next turn (model, approval; a JSON object), NULL if nothing."""
    db.execute("ALTER TABLE instances ADD COLUMN settings TEXT")


def _m9_build_cache(db: sqlite3.Connection) -> None:
    """Executions this store performed, for ``run`` to reuse like ``docker build`` (domarkx.data.build_cache).

    ``key`` digests what the message executed from ``parent``; ``result`` is the
    version it made. An entry lives only as long as both versions are stored:
    when ``prune`` drops a version nothing links any more, its entries go with it.
    """
    run_script(
        db,
        """
        CREATE TABLE build_cache (
            key TEXT PRIMARY KEY,
            parent TEXT NOT NULL REFERENCES workspace_versions(id) ON DELETE CASCADE,
            result TEXT NOT NULL REFERENCES workspace_versions(id) ON DELETE CASCADE,
            steps TEXT NOT NULL,
            created REAL NOT NULL
        );
        CREATE INDEX build_cache_by_parent ON build_cache(parent);
        CREATE INDEX build_cache_by_result ON build_cache(result);
        """,
    )


def _m10_instance_events(db: sqlite3.Connection) -> None:
    """What changed an instance's workspace outside a turn (``exec``, ``cp`` in), in order.

    ``messages``: how many messages the conversation had (the event came after the
    last of them); ``version``: the workspace version it left, ``before``: the one it
    found; ``detail``: JSON (the code, its exit code, the copied path…).
    """
    run_script(
        db,
        """
        CREATE TABLE events (
            instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            messages INTEGER NOT NULL,
            kind TEXT NOT NULL,
            resource TEXT NOT NULL,
            detail TEXT NOT NULL,
            before TEXT,
            version TEXT NOT NULL,
            created REAL NOT NULL,
            PRIMARY KEY (instance_id, seq)
        );
        """,
    )


MIGRATIONS: list[Migration] = [
    _m1_initial,
    _m2_instances,
    _m3_workspaces,
    _m4_pending_workspaces,
    _m5_resource_location,
    _m6_instances_need_their_snapshot,
    _m7_fork_lineage,
    _m8_instance_settings,
    _m9_build_cache,
    _m10_instance_events,
]
"""Schema migrations, applied in order, each once; ``PRAGMA user_version`` counts them."""
