"""The embedded store: SQLite for metadata, content-addressed files for payloads.

Layout under the home directory (``$DOMARKX_HOME``, else the platform's user data
directory)::

    store.db                 SQLite, WAL mode: snapshots, tags, blob references
    blobs/sha256/ab/cdef…    payloads, named by the sha256 of their bytes
    tmp/                     partial writes, renamed into blobs/ when complete
    provisioning.lock        held while workspace rows and directories are out of step
    locks/                   one lock file per instance, held by the process working on it

Atomicity: a blob is written to ``tmp/``, flushed, then renamed into place, so a
blob file is either absent or complete. Metadata rows and the blob references they
hold are written in one SQLite transaction taken with ``BEGIN IMMEDIATE`` *before*
the blobs are written; ``prune`` takes the same lock, so it can never delete a blob
whose referencing rows are about to commit. A crash leaves at worst an unreferenced
blob, which ``prune`` removes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
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


def _m4_pending_workspaces(db: sqlite3.Connection) -> None:
    """``pending``: the workspace has no owner yet (an instance being created) or no longer (being removed).

    A process killed in between leaves it pending; ``domarkx doctor --repair`` removes it.
    """
    db.execute("ALTER TABLE workspaces ADD COLUMN pending INTEGER NOT NULL DEFAULT 0")


MIGRATIONS: list[Migration] = [_m1_initial, _m2_instances, _m3_workspaces, _m4_pending_workspaces]
"""Schema migrations, applied in order, each once; ``PRAGMA user_version`` counts them."""


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_NEARLY_FULL = 1 << 20
DISK_FULL_HINT = "the disk is full: free some space (`domarkx prune` deletes unused data), then retry"


def disk_error(exc: OSError, doing: str) -> StoreError:
    """An OS error met while storing, as a one-line :class:`StoreError`; a full disk gets a hint."""
    hint = DISK_FULL_HINT if exc.errno in _DISK_FULL else None
    return StoreError(f"{doing} failed: {exc.strerror or exc}", hint=hint)


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
        self._leases = 0
        self._exclusive = False
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
            if self._disk_full(exc):
                raise StoreError(f"store database error: {exc}", hint=DISK_FULL_HINT) from exc
            hint = "another domarkx holds the store; retry" if "locked" in str(exc) else None
            raise StoreError(f"store database error: {exc}", hint=hint) from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"store database is damaged: {exc}", hint="run `domarkx doctor`") from exc
        except OSError as exc:
            raise disk_error(exc, f"writing to the store at {self.home}") from exc

    def _disk_full(self, exc: sqlite3.Error) -> bool:
        """SQLITE_FULL, or an I/O error on a disk with no room left (WAL's shared memory cannot grow)."""
        code = getattr(exc, "sqlite_errorcode", 0)
        if code == sqlite3.SQLITE_FULL:
            return True
        if code & 0xFF != sqlite3.SQLITE_IOERR:
            return False
        try:
            return shutil.disk_usage(self.home).free < _NEARLY_FULL
        except OSError:
            return False

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
                self.db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (a full disk) may leave the transaction open: end it, or every
                # later write on this connection would fail too.
                if self.db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One consistent view across several queries, while other processes go on writing (WAL)."""
        with self._translate():
            self.db.execute("BEGIN")
            try:
                yield self.db
            finally:
                self.db.execute("COMMIT")

    # -- provisioning lease ----------------------------------------------------

    @contextlib.contextmanager
    def provisioning(self) -> Iterator[None]:
        """Hold (shared) while creating or removing a workspace and its owner.

        Resource directories exist before their rows, and a workspace row before
        the instance that owns it; while a process is in between, what it made
        looks abandoned. The lock is the process's: the kernel drops it when the
        process dies, however it dies, so a leftover is told from work in
        progress without guessing from ages or pids. Nested use (and use inside
        :meth:`quiescent`) shares the lock already held.
        """
        with self._lease(fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def quiescent(self) -> Iterator[bool]:
        """Whether no other process is provisioning; while True, none can start, so leftovers are truly abandoned."""
        with self._lease(fcntl.LOCK_EX | fcntl.LOCK_NB) as free:
            yield free

    @contextlib.contextmanager
    def _lease(self, mode: int) -> Iterator[bool]:
        if self._leases:  # this store holds it already: flock would wait for itself
            self._leases += 1
            try:
                yield self._exclusive or not mode & fcntl.LOCK_EX
            finally:
                self._leases -= 1
            return
        with self._translate():
            fd = os.open(self.home / "provisioning.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, mode)
            except BlockingIOError:
                yield False
                return
            self._leases, self._exclusive = 1, bool(mode & fcntl.LOCK_EX)
            try:
                yield True
            finally:
                self._leases, self._exclusive = 0, False
        finally:
            os.close(fd)  # releases the lock

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        """An exclusive, non-blocking lock on ``name`` for this process (False: another holds it).

        Like the provisioning lease, it dies with its process, so nothing is ever
        left locked by a crash.
        """
        locks = self.home / "locks"
        with self._translate():
            locks.mkdir(exist_ok=True)
            fd = os.open(locks / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def release(self, name: str) -> None:
        """Delete the lock file of ``name`` (while holding it) once what it guarded is gone."""
        (self.home / "locks" / name).unlink(missing_ok=True)

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
            new_dir = not path.parent.exists()
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
            # The rows that will name this blob commit next: its directory entry must be durable first.
            _fsync_dir(path.parent)
            if new_dir:
                _fsync_dir(path.parent.parent)
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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def validate_tag(tag: str) -> None:
    """Tags are names, not ids: they must not look like a hex prefix."""
    ok = bool(tag) and len(tag) <= 128 and all(c.isalnum() or c in "._-:/" for c in tag)
    if not ok or all(c in "0123456789abcdef" for c in tag) or tag.startswith(ids.PREFIX):
        raise UsageError(
            f"invalid tag {tag!r}",
            hint="use letters, digits and . _ - : / and include a non-hex character (e.g. v1, demo)",
        )
