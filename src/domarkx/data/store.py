"""The embedded store: SQLite for metadata, content-addressed files for payloads.

Layout under the home directory (``$DOMARKX_HOME``, else the platform's user data
directory)::

    store.db                 SQLite, WAL mode: snapshots, tags, blob references
    blobs/sha256/ab/cdef…    payloads, named by the sha256 of their bytes
    tmp/                     partial writes, renamed into blobs/ when complete

Atomicity: a blob is written to ``tmp/``, flushed, then renamed into place, so a
blob file is either absent or complete. Metadata rows and the blob references they
hold are written in one SQLite transaction taken with ``BEGIN IMMEDIATE`` *before*
the blobs are written; ``prune`` takes the same lock, so it can never delete a blob
whose referencing rows are about to commit. A crash leaves at worst an unreferenced
blob, which ``prune`` removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from domarkx import ids
from domarkx.errors import AmbiguousReference, ReferenceNotFound, StoreError, UsageError

Migration = Callable[[sqlite3.Connection], None]


def _run_script(db: sqlite3.Connection, script: str) -> None:
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
    _run_script(
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
    _run_script(
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
    _run_script(
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


MIGRATIONS: list[Migration] = [_m1_initial, _m2_instances, _m3_workspaces]
"""Schema migrations, applied in order, each once; ``PRAGMA user_version`` counts them."""


def default_home() -> Path:
    """``$DOMARKX_HOME`` if set, else the platform's per-user data directory."""
    env = os.environ.get("DOMARKX_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("domarkx", appauthor=False))


class Store:
    """Persistent snapshots (and, later, instances) with content-addressed payloads."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or default_home()
        self.blobs = self.home / "blobs" / "sha256"
        self.tmp = self.home / "tmp"
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.home / "store.db", timeout=60, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the store at {self.home}: {exc}",
                hint="set DOMARKX_HOME to a writable directory",
            ) from exc
        self.db.row_factory = sqlite3.Row
        with self._translate():
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn sqlite3 and OS errors into :class:`StoreError` at the boundary."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            hint = "another domarkx holds the store; retry" if "locked" in str(exc) else None
            raise StoreError(f"store database error: {exc}", hint=hint) from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"store database is damaged: {exc}", hint="run `domarkx doctor`") from exc
        except OSError as exc:
            raise StoreError(f"store I/O error: {exc}") from exc

    def _migrate(self) -> None:
        with self.write():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the store at {self.home} was written by a newer domarkx (schema {version})",
                    hint="upgrade domarkx",
                )
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything inside commits together or not at all.

        Taken with ``BEGIN IMMEDIATE`` so writers queue on SQLite's busy timeout
        instead of failing with "database is locked" half-way.
        """
        with self._translate():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # -- blobs -----------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        hexd = digest.removeprefix(ids.PREFIX)
        return self.blobs / hexd[:2] / hexd[2:]

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` (idempotently) and return its digest.

        Call it inside :meth:`write`, before recording a reference, so ``prune``
        cannot interleave.
        """
        digest = ids.digest_bytes(data)
        path = self.blob_path(digest)
        if path.exists():
            return digest
        with self._translate():
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.tmp)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        return digest

    def get_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"blob {digest} is missing from the store", hint="run `domarkx doctor`") from exc

    def add_refs(self, owner: str, digests: Iterable[str]) -> None:
        """Record that ``owner`` needs these blobs (inside :meth:`write`)."""
        self.db.executemany(
            "INSERT OR IGNORE INTO blob_refs(owner, digest) VALUES (?, ?)",
            [(owner, d) for d in digests],
        )

    def drop_refs(self, owner: str) -> None:
        self.db.execute("DELETE FROM blob_refs WHERE owner = ?", (owner,))

    def prune(self, *, dry_run: bool = False) -> tuple[int, int]:
        """Delete blobs nothing refers to and stale temp files; return (count, bytes)."""
        count = freed = 0
        with self.write() as db:
            wanted = {row[0] for row in db.execute("SELECT DISTINCT digest FROM blob_refs")}
            for path in self.blobs.glob("*/*"):
                digest = ids.PREFIX + path.parent.name + path.name
                if digest in wanted:
                    continue
                count += 1
                freed += path.stat().st_size
                if not dry_run:
                    path.unlink()
            for path in self.tmp.iterdir():
                if not dry_run:
                    path.unlink(missing_ok=True)
        return count, freed

    def verify_blob(self, digest: str) -> bool:
        """Whether the blob is present and its bytes still hash to its name."""
        path = self.blob_path(digest)
        if not path.exists():
            return False
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return ids.PREFIX + h.hexdigest() == digest

    # -- references ------------------------------------------------------------

    def resolve(
        self, ref: str, table: str = "snapshots", *, what: str = "snapshot", id_prefix: str = ids.PREFIX
    ) -> str:
        """The full id behind ``ref``: a full id, a unique hex prefix (≥ 4), or a tag."""
        with self._translate():
            if table == "snapshots":
                row = self.db.execute("SELECT snapshot_id FROM tags WHERE name = ?", (ref,)).fetchone()
                if row:
                    return str(row[0])
            prefix = ref.removeprefix(ids.PREFIX).lower()
            if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix):
                raise ReferenceNotFound(
                    f"no {what} named {ref!r}",
                    hint=f"use a tag or at least 4 hex characters of an id (see `domarkx {what}s ls`)",
                )
            rows = self.db.execute(
                f"SELECT id FROM {table} WHERE id >= ? AND id < ? LIMIT 6",  # noqa: S608 - fixed names
                (id_prefix + prefix, id_prefix + prefix + "g"),
            ).fetchall()
        if not rows:
            raise ReferenceNotFound(f"no {what} matches {ref!r}", hint=f"see `domarkx {what}s ls`")
        if len(rows) > 1:
            shown = ", ".join(ids.short(r[0]) for r in rows[:5])
            raise AmbiguousReference(
                f"{ref!r} matches more than one {what}: {shown}", hint="give more characters of the id"
            )
        return str(rows[0][0])

    def set_tag(self, snapshot_id: str, tag: str) -> None:
        validate_tag(tag)
        with self.write() as db:
            db.execute(
                "INSERT INTO tags(name, snapshot_id) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET snapshot_id = excluded.snapshot_id",
                (tag, snapshot_id),
            )

    def now(self) -> float:
        return time.time()


def validate_tag(tag: str) -> None:
    """Tags are names, not ids: they must not look like a hex prefix."""
    ok = bool(tag) and len(tag) <= 128 and all(c.isalnum() or c in "._-:/" for c in tag)
    if not ok or all(c in "0123456789abcdef" for c in tag) or tag.startswith(ids.PREFIX):
        raise UsageError(
            f"invalid tag {tag!r}",
            hint="use letters, digits and . _ - : / and include a non-hex character (e.g. v1, demo)",
        )
