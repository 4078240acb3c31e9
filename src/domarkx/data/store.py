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
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from domarkx import ids
from domarkx.data.schema import MIGRATIONS
from domarkx.errors import AmbiguousReference, ReferenceNotFound, StoreError

if TYPE_CHECKING:
    from pathlib import Path

    from domarkx.data.build_cache import BuildCache
    from domarkx.data.events import Events
    from domarkx.data.instances import Instances
    from domarkx.data.snapshots import Snapshots
    from domarkx.data.versions import Versions
    from domarkx.data.workspaces import Workspaces

SYNCHRONOUS = "FULL"
"""SQLite syncs the WAL at every commit: a transaction that returned survives a power cut (docs/store.md)."""
BUSY_TIMEOUT = 60
"""Seconds a command waits for another one holding the store before it gives up."""
HEX = frozenset("0123456789abcdef")
DOCTOR_HINT = "run `domarkx doctor`"
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_NEARLY_FULL = 1 << 20
DISK_FULL_HINT = "the disk is full: free some space (`domarkx prune` deletes unused data), then retry"


def disk_error(exc: OSError, doing: str) -> StoreError:
    """An OS error met while storing, as a one-line :class:`StoreError`; a full disk gets a hint."""
    hint = DISK_FULL_HINT if exc.errno in _DISK_FULL else None
    return StoreError(f"{doing} failed: {exc.strerror or exc}", hint=hint)


def _damaged(exc: sqlite3.OperationalError) -> bool:
    """A read that found the file broken (SQLite reports some corruption as an operational error)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in str(exc)


def default_home() -> Path:
    """``$DOMARKX_HOME`` if set, else the platform's per-user data directory."""
    from pathlib import Path

    return Path(_default_home())


def _default_home() -> str:
    """:func:`default_home` as text, without pathlib or platformdirs on Linux (each costs quick commands ~10 ms).

    On Linux this is what platformdirs answers: ``$XDG_DATA_HOME/domarkx``, else
    ``~/.local/share/domarkx``; elsewhere platformdirs is asked.
    """
    env = os.environ.get("DOMARKX_HOME")
    if env:
        return os.path.expanduser(env)
    if sys.platform.startswith("linux"):
        base = os.environ.get("XDG_DATA_HOME", "").strip() or os.path.expanduser("~/.local/share")
        return os.path.join(base, "domarkx")
    import platformdirs

    return platformdirs.user_data_dir("domarkx", appauthor=False)


class Store:
    """The home's database and blob files, with every SQLite and OS error translated.

    The rows themselves are read and written through the repositories hung on
    it (:attr:`snapshots`, :attr:`instances`, :attr:`workspaces`,
    :attr:`versions`): plain rows in, plain rows out, so listing commands never
    load pydantic. Their methods join a transaction the caller holds
    (:meth:`write`, :meth:`read`) or open their own.
    """

    def __init__(self, home: Path | None = None) -> None:
        self._home = os.fspath(home) if home is not None else _default_home()
        self._leases = 0
        self._exclusive = False
        self._writing = 0
        try:
            os.makedirs(os.path.join(self._home, "blobs", "sha256"), exist_ok=True)
            os.makedirs(os.path.join(self._home, "tmp"), exist_ok=True)
            self.db = sqlite3.connect(os.path.join(self._home, "store.db"), timeout=BUSY_TIMEOUT, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the store at {self._home}: {exc}",
                hint="set DOMARKX_HOME to a writable directory",
            ) from exc
        self.db.row_factory = sqlite3.Row
        with self._translate():
            self._use_wal()
            self.db.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
            self._migrate()
            self.db.execute("PRAGMA foreign_keys=ON")

    def _use_wal(self) -> None:
        """Switch the database to WAL, waiting while another process switches a new home too.

        SQLite answers this switch with "database is locked" at once instead of
        waiting on its busy time-out, so two commands opening a fresh home
        together (two `load`s, a script's parallel `run`s) would fail without it.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- where things are (pathlib is loaded on first use: listing commands need none) ----

    @cached_property
    def home(self) -> Path:
        from pathlib import Path

        return Path(self._home)

    @cached_property
    def blobs(self) -> Path:
        return self.home / "blobs" / "sha256"

    @cached_property
    def tmp(self) -> Path:
        return self.home / "tmp"

    # -- the repositories ------------------------------------------------------------

    @cached_property
    def snapshots(self) -> Snapshots:
        from domarkx.data.snapshots import Snapshots

        return Snapshots(self)

    @cached_property
    def instances(self) -> Instances:
        from domarkx.data.instances import Instances

        return Instances(self)

    @cached_property
    def workspaces(self) -> Workspaces:
        from domarkx.data.workspaces import Workspaces

        return Workspaces(self)

    @cached_property
    def events(self) -> Events:
        from domarkx.data.events import Events

        return Events(self)

    @cached_property
    def versions(self) -> Versions:
        from domarkx.data.versions import Versions

        return Versions(self)

    @cached_property
    def build_cache(self) -> BuildCache:
        from domarkx.data.build_cache import BuildCache

        return BuildCache(self)

    # -- errors and transactions -----------------------------------------------------

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn sqlite3 and OS errors into :class:`StoreError` at the boundary."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if self._disk_full(exc):
                raise StoreError(f"store database error: {exc}", hint=DISK_FULL_HINT) from exc
            if _damaged(exc):
                raise StoreError(f"store database is damaged: {exc}", hint=DOCTOR_HINT) from exc
            hint = "another domarkx holds the store; retry" if "locked" in str(exc) else None
            raise StoreError(f"store database error: {exc}", hint=hint) from exc
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"the store refused a change: {exc}", hint=DOCTOR_HINT) from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"store database is damaged: {exc}", hint=DOCTOR_HINT) from exc
        except OSError as exc:
            raise disk_error(exc, f"writing to the store at {self._home}") from exc

    def _disk_full(self, exc: sqlite3.Error) -> bool:
        """SQLITE_FULL, or an I/O error on a disk with no room left (WAL's shared memory cannot grow)."""
        code = getattr(exc, "sqlite_errorcode", 0)
        if code == sqlite3.SQLITE_FULL:
            return True
        if code & 0xFF != sqlite3.SQLITE_IOERR:
            return False
        try:
            stats = os.statvfs(self._home)
        except OSError:
            return False
        return stats.f_bavail * stats.f_frsize < _NEARLY_FULL

    def _migrate(self) -> None:
        """Bring the schema up to date; a current store is only read (no write lock)."""
        if self.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS):
            return
        # Foreign keys stay off while tables are rebuilt (it cannot change inside a transaction).
        self.db.execute("PRAGMA foreign_keys=OFF")
        with self.write():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the store at {self._home} was written by a newer domarkx (schema {version})",
                    hint="upgrade domarkx",
                )
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything inside commits together or not at all.

        Taken with ``BEGIN IMMEDIATE`` so writers queue on SQLite's busy timeout
        instead of failing with "database is locked" half-way. Inside another
        :meth:`write`, it joins that transaction: a repository method and its
        caller's checks then commit together.
        """
        with self._translate():
            if self._writing:
                self._writing += 1
                try:
                    yield self.db
                finally:
                    self._writing -= 1
                return
            if self.db.in_transaction:
                raise StoreError("a write was started inside a read of the store (a bug)")
            self.db.execute("BEGIN IMMEDIATE")
            self._writing = 1
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
            finally:
                self._writing = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One consistent view across several queries, while other processes go on writing (WAL).

        Inside a :meth:`write` or another :meth:`read` it uses that transaction.
        """
        with self._translate():
            if self.db.in_transaction:
                yield self.db
                return
            self.db.execute("BEGIN")
            try:
                yield self.db
            finally:
                if self.db.in_transaction:
                    self.db.execute("COMMIT")

    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        """All rows of one statement, read with errors translated (repositories use it)."""
        with self._translate():
            return self.db.execute(sql, params).fetchall()

    def integrity_problems(self) -> list[str]:
        """What SQLite's own check finds wrong with the database file (empty: nothing)."""
        rows = self.query("PRAGMA integrity_check")
        return [] if [r[0] for r in rows] == ["ok"] else [str(r[0]) for r in rows]

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
        """An exclusive lock on ``name`` for this process, not waited for (False: another holds it).

        Only a peek's instant is waited out (:func:`domarkx.data.locks.take`).

        Like the provisioning lease, it dies with its process, so nothing is ever
        left locked by a crash.
        """
        locks = self.home / "locks"
        with self._translate():
            locks.mkdir(exist_ok=True)
            fd = os.open(locks / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            from domarkx.data.locks import take  # retries past a peek (`instances ls`)

            yield take(fd)
        finally:
            os.close(fd)

    def held(self, names: Iterable[str]) -> set[str]:
        """Which of these locks another process holds now (a peek each: :func:`domarkx.data.locks.held`)."""
        from domarkx.data.locks import held

        return held(os.path.join(self._home, "locks"), names)

    def release(self, name: str) -> None:
        """Delete the lock file of ``name`` (while holding it) once what it guarded is gone."""
        (self.home / "locks" / name).unlink(missing_ok=True)

    # -- blobs -----------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        from pathlib import Path

        return Path(self._blob_file(digest))

    def _blob_file(self, digest: str) -> str:
        hexd = digest.removeprefix(ids.PREFIX)
        return os.path.join(self._home, "blobs", "sha256", hexd[:2], hexd[2:])

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
            fd, tmp = _temporary(self.tmp)
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
            fsync_dir(path.parent)
            if new_dir:
                fsync_dir(path.parent.parent)
        return digest

    def get_blob(self, digest: str) -> bytes:
        try:
            with open(self._blob_file(digest), "rb") as fh:
                return fh.read()
        except FileNotFoundError as exc:
            raise StoreError(f"blob {digest} is missing from the store", hint="run `domarkx doctor`") from exc

    def add_refs(self, owner: str, digests: Iterable[str]) -> None:
        """Record that ``owner`` needs these blobs (inside :meth:`write`)."""
        with self.write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO blob_refs(owner, digest) VALUES (?, ?)",
                [(owner, d) for d in digests],
            )

    def drop_refs(self, owner: str, digests: Iterable[str] | None = None) -> None:
        """``owner`` no longer needs these blobs (all of them when ``digests`` is None)."""
        with self.write() as db:
            if digests is None:
                db.execute("DELETE FROM blob_refs WHERE owner = ?", (owner,))
            else:
                db.executemany("DELETE FROM blob_refs WHERE owner = ? AND digest = ?", [(owner, d) for d in digests])

    def owned(self, owner: str) -> set[str]:
        """The blobs ``owner`` holds a reference to."""
        return {row[0] for row in self.query("SELECT digest FROM blob_refs WHERE owner = ?", (owner,))}

    def blob_owners(self) -> dict[str, list[str]]:
        """Every referenced blob and who references it (``doctor`` checks each)."""
        rows = self.query("SELECT digest, owner FROM blob_refs ORDER BY digest, owner")
        owners: dict[str, list[str]] = {}
        for digest, owner in rows:
            owners.setdefault(digest, []).append(owner)
        return owners

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

    def vacuum(self, *, dry_run: bool = False) -> int:
        """Give the database's free pages back to the file system; return the bytes freed.

        A dry run counts the free pages. VACUUM needs every other writer to be
        done; when one holds the store past the busy time-out, it is an error.
        """
        if dry_run:
            free, size = (self.query(f"PRAGMA {name}")[0][0] for name in ("freelist_count", "page_size"))
            return int(free) * int(size)
        before = self._database_bytes()
        with self._translate():
            self.db.execute("VACUUM")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return max(0, before - self._database_bytes())

    def _database_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += (self.home / f"store.db{suffix}").stat().st_size
        return total

    def verify_blob(self, digest: str) -> bool:
        """Whether the blob is present and its bytes still hash to its name."""
        path = self.blob_path(digest)
        if not path.exists():
            return False
        import hashlib  # not at the top: listing commands never hash (start-up time)

        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return ids.PREFIX + h.hexdigest() == digest

    # -- references ------------------------------------------------------------

    def resolve_prefix(self, table: str, ref: str, *, what: str, id_prefix: str = ids.PREFIX) -> str | None:
        """The one id of ``table`` that ``ref`` begins, or None if ``ref`` is no id prefix.

        A prefix is at least 4 hex characters, with or without ``sha256:``. No
        match, and several matches, are errors that say so.
        """
        prefix = ref.removeprefix(ids.PREFIX).lower()
        if len(prefix) < 4 or any(c not in HEX for c in prefix):
            return None
        rows = self.query(
            f"SELECT id FROM {table} WHERE id >= ? AND id < ? LIMIT 6",  # noqa: S608 - fixed names
            (id_prefix + prefix, id_prefix + prefix + "g"),
        )
        if not rows:
            raise ReferenceNotFound(f"no {what} matches {ref!r}", hint=f"see `domarkx {what}s ls`")
        if len(rows) > 1:
            found = [str(r[0]) for r in rows]
            length = next(n for n in range(12, 65) if len({ids.short(f, n) for f in found}) == len(found))
            shown = ", ".join(ids.short(f, length) for f in found[:5]) + (", …" if len(found) > 5 else "")
            raise AmbiguousReference(
                f"{ref!r} matches more than one {what}: {shown}", hint="give more characters of the id"
            )
        return str(rows[0][0])

    def resolve_any(self, ref: str) -> tuple[str, str]:
        """(``"instance"`` or ``"snapshot"``, id) for a reference that may name either.

        ``instance:REF`` and ``snapshot:REF`` pick the kind when a reference could mean both.
        """
        kind, colon, rest = ref.partition(":")
        if colon and kind == "instance":
            return kind, self.instances.resolve(rest)
        if colon and kind == "snapshot":
            return kind, self.snapshots.resolve(ref)
        found: list[tuple[str, str]] = []
        for kind, resolver in (("instance", self.instances.resolve), ("snapshot", self.snapshots.resolve)):
            try:
                found.append((kind, resolver(ref)))
            except ReferenceNotFound:
                continue
        if not found:
            raise ReferenceNotFound(
                f"no instance or snapshot matches {ref!r}",
                hint="see `domarkx instances ls` and `domarkx snapshots ls`",
            )
        if len(found) > 1:
            raise AmbiguousReference(
                f"{ref!r} names both an instance and a snapshot",
                hint=f"say which: instance:{ref} or snapshot:{ref}",
            )
        return found[0]

    def now(self) -> float:
        return time.time()


def _temporary(directory: Path) -> tuple[int, str]:
    import tempfile  # not at the top: listing commands never write (start-up time)

    return tempfile.mkstemp(dir=directory)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a file just renamed into it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
