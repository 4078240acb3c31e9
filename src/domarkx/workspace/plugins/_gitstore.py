"""One git object store per home, shared by every ``local_shell`` resource.

Each resource has a work tree and its own index file; the repository itself is
a bare one under the plugin directory, so there is no ``.git`` in a work tree:
a command's own use of git there never meets domarkx's history (and inside the
bubblewrap sandbox the store is not even visible). Because all resources
share the objects, a commit made by one can be checked out in any other (which
is how a fork gets its parent's files).

The real ``git`` binary does the work (its index stat cache is what makes a
commit after one change cost about as much as ``git commit``), run with a fixed
identity and dates, no system or user configuration and attributes forced off,
so bytes go in and come out unchanged and equal states give equal commits.

Paths are bytes everywhere (``-z`` output, NUL-separated input, ``os.fsdecode``
only to reach the file system): a file name may be any bytes but ``/`` and NUL.

A version is a commit. Git cannot store an empty directory, so the commit
message lists them on one line, ``empty-dirs: <JSON list>``: each name is its
bytes decoded as UTF-8 with ``surrogateescape``, and the undecodable bytes are
written as ``\\udcXX`` escapes, so the line is UTF-8 JSON without a line break
(the message is split at ``\\n`` only). Loading works like ``git checkout``:
only the paths that differ between the index and the target tree are touched,
so its cost follows the size of the change; a fresh work tree is filled with
``read-tree`` + ``checkout-index`` instead, which costs what writing the files
costs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from domarkx import paths
from domarkx.errors import DomarkxError, StoreError, UsageError

_IDENTITY = {
    "GIT_AUTHOR_NAME": "domarkx",
    "GIT_AUTHOR_EMAIL": "domarkx@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+0000",
    "GIT_COMMITTER_NAME": "domarkx",
    "GIT_COMMITTER_EMAIL": "domarkx@localhost",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+0000",
}
# Versions are reachable from no ref between prunes (a ref per commit would cost a process
# each), so nothing but `collect` may ever remove unreachable objects.
_CONFIG = {"gc.auto": "0", "gc.pruneExpire": "never"}
# Highest-precedence attributes: no line-ending, filter or encoding conversion, whatever
# .gitattributes files a command writes into the work tree.
_ATTRIBUTES = "* -text -eol -filter -ident -working-tree-encoding\n"
_MESSAGE = b"domarkx local_shell\n"
_EMPTY_DIRS = b"empty-dirs: "
_SURROGATE = re.compile("[\udc80-\udcff]")
Reader = Callable[[str], tuple[str, bytes]]
"""Asks a running ``cat-file --batch`` for one object: id → (type, content)."""
_ZERO_ID = "0" * 40
"""The object id ``diff-tree`` shows for the side a path is absent from."""
_LIVE_REFS = "refs/domarkx/"
"""Refs ``collect`` sets for what must survive a garbage collection (and nothing else)."""


class IndexDamaged(DomarkxError):
    """A resource's index that git cannot read (a power cut while it was written): rebuild it, then retry."""


_INDEX_DAMAGE = (b"index file corrupt", b"bad signature", b"index file smaller than expected", b"bad index file")


@dataclass(frozen=True)
class Snapshot:
    """What a version records: the tree and the empty directories beside it."""

    tree: str
    empty_dirs: tuple[bytes, ...]


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a tree: git's mode, object type and id, its size (blobs) and its name."""

    mode: str
    kind: str
    object_id: str
    size: int
    name: bytes


@dataclass(frozen=True)
class Changed:
    """One path that differs between two trees (``git diff-tree --raw``)."""

    old_mode: str
    new_mode: str
    old_id: str
    new_id: str
    status: str
    path: bytes


@dataclass(frozen=True)
class Comparison:
    """Two versions compared: the changed paths, both snapshots, and the changed blobs' bytes by id."""

    changes: list[Changed]
    before: Snapshot
    after: Snapshot
    blobs: dict[str, bytes]


class GitStore:
    """The shared bare repository; each call names the work tree and index it acts on."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self._git = shutil.which("git")
        if self._git is None:
            raise DomarkxError("local_shell needs git, which is not on PATH", hint="install git")
        if not (git_dir / "HEAD").exists():
            self._init()

    def _init(self) -> None:
        """Create the repository in a temporary directory and move it into place (race-safe)."""
        self.git_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.git_dir.parent, prefix=".init-"))
        try:
            self._run(["init", "--bare", "-q", str(tmp)], git_dir=tmp)
            for key, value in _CONFIG.items():
                self._run(["config", key, value], git_dir=tmp)
            (tmp / "info").mkdir(exist_ok=True)
            (tmp / "info" / "attributes").write_text(_ATTRIBUTES, encoding="utf-8")
            with contextlib.suppress(OSError):  # another process won the race: use its repository
                tmp.rename(self.git_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _env(self, git_dir: Path, work: Path | None, index: Path | None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.git_dir.parent),
            "LC_ALL": "C",
            "GIT_DIR": str(git_dir),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_LITERAL_PATHSPECS": "1",  # paths are names, never globs
            # no hooks, whatever a command may have put into the repository
            "GIT_CONFIG_COUNT": "3",
            "GIT_CONFIG_KEY_0": "core.hooksPath",
            "GIT_CONFIG_VALUE_0": os.devnull,
            # objects reach the disk before the store records a version naming them (batched:
            # one flush per git run, not one per file); the index is a cache, rebuilt from the tree
            "GIT_CONFIG_KEY_1": "core.fsync",
            "GIT_CONFIG_VALUE_1": "objects",
            "GIT_CONFIG_KEY_2": "core.fsyncMethod",
            "GIT_CONFIG_VALUE_2": "batch",
            **_IDENTITY,
        }
        if work is not None:
            env["GIT_WORK_TREE"] = str(work)
        if index is not None:
            env["GIT_INDEX_FILE"] = str(index)
        return env

    def _run(
        self,
        args: Sequence[str | bytes],
        *,
        git_dir: Path | None = None,
        work: Path | None = None,
        index: Path | None = None,
        stdin: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> bytes:
        """Run git and return its stdout; a failure is one line (:func:`_failure`)."""
        done = self._spawn(args, git_dir=git_dir, work=work, index=index, stdin=stdin, env=env)
        if done.returncode != 0:
            raise _failure(str(args[0]), done.stderr, done.returncode, index)
        return done.stdout

    def _spawn(
        self,
        args: Sequence[str | bytes],
        *,
        git_dir: Path | None,
        work: Path | None,
        index: Path | None,
        stdin: bytes | None,
        env: dict[str, str] | None,
    ) -> subprocess.CompletedProcess[bytes]:
        assert self._git is not None
        environment = self._env(git_dir or self.git_dir, work, index) | (env or {})
        cwd = work or git_dir or self.git_dir
        with contextlib.ExitStack() as stack:
            held = () if index is None else (stack.enter_context(_index_lock(index)),)
            try:
                return subprocess.run(
                    [self._git, *args],
                    cwd=cwd,
                    env=environment,
                    input=stdin,
                    capture_output=True,
                    check=False,
                    pass_fds=held,  # git holds the lock too, should this process die first
                )
            except OSError as exc:
                raise DomarkxError(f"cannot run git: {exc}") from exc

    # -- what is stored ------------------------------------------------------------------

    def missing(self, commits: Collection[str]) -> set[str]:
        """Which of these commits cannot be checked out: absent, not ours, damaged, or with objects lost.

        Each commit is read as a load reads it (its list of empty directories
        included), so what this calls intact, a fork can load.
        """
        wanted = sorted(set(commits))
        if not wanted:
            return set()
        valid = [c for c in wanted if _is_commit_id(c)]
        bodies = self._objects(valid)
        found = []
        for commit in valid:
            kind, body = bodies.get(commit, ("missing", b""))
            if kind == "commit" and _parses(commit, body):
                found.append(commit)
        absent = set(wanted) - set(found)
        if found and self._objects_lost(found):  # rare: find out which commit it was
            absent |= {c for c in found if self._objects_lost([c])}
        return absent

    def _objects_lost(self, commits: list[str]) -> bool:
        out = self._run(["rev-list", "--objects", "--no-walk", "--missing=print", "--stdin"], stdin=_lines(commits))
        return any(line.startswith(b"?") for line in out.split(b"\n"))

    def _objects(self, object_ids: Iterable[str], env: dict[str, str] | None = None) -> dict[str, tuple[str, bytes]]:
        """Type and content of each object, read by one ``cat-file --batch`` (ids never hold a newline)."""
        ids = list(dict.fromkeys(object_ids))
        if not ids:
            return {}
        return _batch(ids, self._run(["cat-file", "--batch"], stdin=_lines(ids), env=env))

    def read(self, commit: str) -> Snapshot:
        """The tree and empty directories of a commit; a usage error if it is not one of ours."""
        if not _is_commit_id(commit):
            raise UsageError(f"{commit!r} is not a local_shell version", hint="versions are 40-hex commit ids")
        kind, body = self._objects([commit]).get(commit, ("missing", b""))
        if kind != "commit":
            raise UsageError(f"unknown local_shell version {commit}")
        return parse_commit(commit, body)

    def tree_of(self, commit: str) -> str:
        return self.read(commit).tree

    # -- commit ----------------------------------------------------------------------------

    def stage(self, work: Path, index: Path) -> tuple[Snapshot, list[bytes]]:
        """Bring the index in line with the work tree and describe it; cheap when little changed.

        Returns the snapshot and the paths that could not be read (a file or
        directory a command made unreadable): they are left out of the version,
        or keep the content they had in it, and the caller says so.
        """
        added = self._spawn(
            ["add", "--all", "--force", "--ignore-errors", "--", "."],
            git_dir=None,
            work=work,
            index=index,
            stdin=None,
            env=None,
        )
        if added.returncode != 0 and not _only_file_errors(added.stderr):
            raise _failure("add", added.stderr, added.returncode, index)
        tree = self._run(["write-tree"], work=work, index=index).strip().decode()
        empty, unreadable = self._untracked(work, index)
        if added.returncode != 0:  # tracked files it could not read again keep their indexed content
            unreadable += _nul_split(self._run(["diff-files", "-z", "--name-only"], work=work, index=index))
        return Snapshot(tree, empty), sorted(set(unreadable))

    def _untracked(self, work: Path, index: Path) -> tuple[tuple[bytes, ...], list[bytes]]:
        """After ``add --all``: directories holding no file (empty), and what ``add`` could not read.

        Git lists an untracked directory as ``dir/``; an untracked file left
        after ``add --all`` is one it could not open.
        """
        out = self._run(["ls-files", "-z", "--others", "--directory"], work=work, index=index)
        empty: list[bytes] = []
        unreadable: list[bytes] = []
        base = os.fsencode(work)

        def cannot_list(error: OSError) -> None:
            unreadable.append(os.path.relpath(os.fsencode(error.filename), base))

        for entry in _nul_split(out):
            if not entry.endswith(b"/"):
                unreadable.append(entry)
                continue
            for top, dirs, files in os.walk(os.path.join(base, entry.rstrip(b"/")), onerror=cannot_list):
                # Regular files git left untracked are files it could not read (it skips FIFOs and sockets).
                unreadable += [os.path.relpath(os.path.join(top, f), base) for f in files if _regular(top, f)]
                if not dirs:
                    empty.append(os.path.relpath(top, base))
        return tuple(sorted(empty)), unreadable

    def commit(self, snapshot: Snapshot, parent: str | None) -> str:
        message = _MESSAGE
        if snapshot.empty_dirs:
            message += b"\n" + _EMPTY_DIRS + _dirs_json(snapshot.empty_dirs) + b"\n"
        args = ["commit-tree", snapshot.tree, "-F", "-"]
        if parent:
            args += ["-p", parent]
        return self._run(args, stdin=message).strip().decode()

    # -- load -------------------------------------------------------------------------------

    def discard_untracked(self, work: Path, index: Path) -> list[bytes]:
        """Delete whatever the index does not know; return the tracked paths changed since.

        Together with :meth:`switch` this is ``git checkout -f`` + ``git clean
        -fdx``: after it, every difference from the index is a listed path.
        """
        out = self._run(["ls-files", "-z", "--others", "--directory"], work=work, index=index)
        for entry in _nul_split(out):
            path = work / os.fsdecode(entry.rstrip(b"/"))
            if not _inside(work, path.parent):
                raise DomarkxError(
                    f"cannot remove {paths.escape(entry)}: a symlink in its path leads out of the work tree"
                )
            remove_path(path)
        return _nul_split(self._run(["diff-files", "-z", "--name-only"], work=work, index=index))

    def switch(
        self,
        work: Path,
        index: Path,
        current_empty: tuple[bytes, ...],
        target: Snapshot,
        stale: Sequence[bytes] = (),
    ) -> None:
        """Turn the work tree, which the index describes exactly, into exactly ``target``.

        Only what differs is touched, as in ``git checkout``, but found by
        comparing the index with the target tree (``diff-index``, which the
        index's cache of tree ids makes cheap) rather than by scanning the work
        tree: removed paths are deleted here and dropped from the index, and one
        path-limited ``git checkout`` updates the index and writes the others. The
        caller guarantees the index describes the work tree except for the
        ``stale`` paths (see :meth:`discard_untracked`), which are rewritten from
        the target; ``current_empty`` lists the work tree's empty directories.
        """
        raw = self._run(["diff-index", "--cached", "-R", "-r", "-z", target.tree], work=work, index=index)
        fields = raw.split(b"\0")
        removed: list[bytes] = []
        written: set[bytes] = set(stale)
        for header, path in zip(fields[0::2], fields[1::2], strict=False):
            if not header.startswith(b":"):
                continue
            if not header.endswith(b" D"):
                written.add(path)
                continue
            written.discard(path)
            full = work / os.fsdecode(path)
            if not _inside(work, full.parent):
                raise DomarkxError(
                    f"cannot remove {paths.escape(path)}: a symlink in its path leads out of the work tree"
                )
            remove_path(full)
            _prune_parents(work, full.parent)
            removed.append(path)
        if removed:  # before the checkout, so a file can become a directory and back
            self._run(["update-index", "--remove", "-z", "--stdin"], work=work, index=index, stdin=_nul_list(removed))
        if written:
            self._run(
                ["checkout", target.tree, "--pathspec-from-file=-", "--pathspec-file-nul"],
                work=work,
                index=index,
                stdin=_nul_list(sorted(written)),
            )
        self._empty_dirs_to(work, current_empty, target.empty_dirs)

    def rebuild_index(self, work: Path, index: Path, tree: str) -> None:
        """A fresh index describing ``tree``, for one git could not read; its stat data is unknown, so
        the next ``add`` hashes every file again."""
        index.unlink(missing_ok=True)
        self._run(["read-tree", tree], work=work, index=index)

    def fill(self, work: Path, index: Path, target: Snapshot) -> None:
        """Write ``target`` into an empty work tree with a fresh index: every file once, no comparisons.

        ``read-tree`` makes the index, ``checkout-index`` writes each file and
        records its stat data, so the next commit's ``add`` finds nothing to hash.
        """
        index.unlink(missing_ok=True)
        self._run(["read-tree", target.tree], work=work, index=index)
        # one worker per core: writing files waits on the disk more than on the processor
        self._run(["-c", "checkout.workers=0", "checkout-index", "--all", "--force", "-u"], work=work, index=index)
        self._empty_dirs_to(work, (), target.empty_dirs)

    @staticmethod
    def _empty_dirs_to(work: Path, current: Sequence[bytes], target: Sequence[bytes]) -> None:
        wanted = set(target)
        for rel in current:
            if rel not in wanted:
                _prune_parents(work, work / os.fsdecode(rel))
        for rel in target:
            (work / os.fsdecode(rel)).mkdir(parents=True, exist_ok=True)

    # -- browse and compare versions ----------------------------------------------------------

    def list_tree(self, commit: str, path: bytes) -> list[TreeEntry] | None:
        """The entries of directory ``path`` (``b""``: the top) of a version; None if its tree has none."""
        self.read(commit)  # a usage error for what is not one of ours
        treeish = commit.encode() + b":" + path if path else commit.encode() + b"^{tree}"
        done = self._spawn(["ls-tree", "-z", "-l", treeish], git_dir=None, work=None, index=None, stdin=None, env=None)
        if done.returncode != 0:
            return None
        out = done.stdout
        entries = []
        for item in _nul_split(out):
            meta, _tab, name = item.partition(b"\t")
            mode, kind, object_id, size = meta.split()
            entries.append(TreeEntry(mode.decode(), kind.decode(), object_id.decode(), _size(size), name))
        return entries

    def read_blob(self, commit: str, path: bytes) -> bytes:
        """The bytes of file ``path`` in a version (a symlink's target, for a link)."""
        self.read(commit)
        try:
            return self._run(["cat-file", "blob", commit.encode() + b":" + path])
        except DomarkxError as exc:
            raise UsageError(f"no file {paths.escape(path)} in local_shell version {commit}") from exc

    def compare(self, old: str, new: str) -> Comparison:
        """What differs between two versions: a tree diff, both snapshots, and the changed blobs' bytes.

        One ``cat-file --batch`` process answers everything: the two commits,
        then only the trees whose ids differ (as ``diff-tree`` descends), then
        the changed blobs. A one-file change in 10,000 files reads a handful of
        objects, in one process (a second one costs more than all the reading).
        """
        for commit in (old, new):
            if not _is_commit_id(commit):
                raise UsageError(f"{commit!r} is not a local_shell version", hint="versions are 40-hex commit ids")
        with self._reader() as read:
            snapshots = []
            for commit in (old, new):
                kind, body = read(commit)
                if kind != "commit":
                    raise UsageError(f"unknown local_shell version {commit}")
                snapshots.append(parse_commit(commit, body))
            changes = _tree_diff(read, snapshots[0].tree, snapshots[1].tree, b"")
            wanted = {i for c in changes for i in (c.old_id, c.new_id) if i != _ZERO_ID}
            blobs = {i: body for i in sorted(wanted) for kind, body in [read(i)] if kind == "blob"}
        return Comparison(changes, snapshots[0], snapshots[1], blobs)

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Reader]:
        """A ``cat-file --batch`` process to ask for objects one at a time: id → (type, content)."""
        assert self._git is not None
        with subprocess.Popen(
            [self._git, "cat-file", "--batch"],
            cwd=self.git_dir,
            env=self._env(self.git_dir, None, None),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        ) as process:
            assert process.stdin is not None and process.stdout is not None
            ask, answer = process.stdin, process.stdout

            def read(object_id: str) -> tuple[str, bytes]:
                ask.write(f"{object_id}\n".encode())
                ask.flush()
                header = answer.readline().split()
                if len(header) != 3:
                    if not header:
                        raise DomarkxError("git cat-file stopped answering")
                    return "missing", b""
                body = answer.read(int(header[2]) + 1)
                return header[1].decode(), body[:-1]

            try:
                yield read
            finally:
                process.kill()  # closing the pipes and waiting is Popen's exit

    def blobs(self, object_ids: Iterable[str]) -> dict[str, bytes]:
        """The content of blobs by id, in one read."""
        return {k: body for k, (kind, body) in self._objects(object_ids).items() if kind == "blob"}

    # -- versions elsewhere --------------------------------------------------------------------

    def pack(self, commits: Sequence[str], have: Collection[str], into: Path) -> int:
        """Write to ``into`` one pack of every object ``commits`` need that ``have`` lacks; return the count."""
        lost = self.missing(commits)
        if lost:
            raise StoreError(f"local_shell version {sorted(lost)[0]} is not in this home", hint="run `domarkx doctor`")
        known = sorted(set(have) - self.missing(have))
        revs = _lines([*commits, *(f"^{h}" for h in known)])
        with into.open("wb") as fh:
            done = subprocess.run(
                [self._git or "git", "pack-objects", "--revs", "--stdout", "-q"],
                input=revs,
                stdout=fh,
                stderr=subprocess.PIPE,
                env=self._env(self.git_dir, None, None),
                cwd=self.git_dir,
                check=False,
            )
        if done.returncode != 0:
            raise _failure("pack-objects", done.stderr, done.returncode)
        with into.open("rb") as fh:
            header = fh.read(12)
        return int.from_bytes(header[8:12], "big") if len(header) == 12 else 0

    def unpack(self, pack: Path, commits: Sequence[str]) -> None:
        """Take in a pack that must hold ``commits`` completely (with what is here); add nothing otherwise.

        The pack is indexed in a quarantine directory (git checks every object),
        the commits are read through it, and only then is it moved in.
        """
        objects = self.git_dir / "objects"
        quarantine = Path(tempfile.mkdtemp(dir=objects, prefix="incoming-"))
        try:
            env = {"GIT_OBJECT_DIRECTORY": str(quarantine), "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects)}
            (quarantine / "pack").mkdir()
            try:
                self._run(["index-pack", "--stdin", "--strict"], stdin=pack.read_bytes(), env=env)
            except StoreError:
                raise  # a full disk
            except DomarkxError as exc:
                raise StoreError(f"a local_shell layer is not a sound pack: {exc.message}") from exc
            for commit in commits:
                kind, body = self._objects([commit], env=env).get(commit, ("missing", b""))
                if kind != "commit" or not _parses(commit, body):
                    raise StoreError(f"a local_shell layer does not hold version {commit}")
            out = self._run(["rev-list", "--objects", "--missing=print", "--stdin"], stdin=_lines(commits), env=env)
            if any(line.startswith(b"?") for line in out.split(b"\n")):
                raise StoreError("a local_shell layer lacks objects its versions need")
            for suffix in (".pack", ".idx"):  # the index last: git uses a pack once its index is there
                for found in (quarantine / "pack").glob(f"*{suffix}"):
                    os.replace(found, objects / "pack" / found.name)
        finally:
            shutil.rmtree(quarantine, ignore_errors=True)

    def collect(self, live: Collection[str], indexes: Sequence[Path]) -> int:
        """Remove every object neither a live commit nor a resource's index needs; return bytes freed.

        Refs are set for what must stay (live commits, and a tree of each
        index, whose blobs a resource may not have committed yet), then git's
        own garbage collection repacks what they reach and drops the rest.
        """
        keep = sorted(set(live) - self.missing(live))
        targets = {f"{_LIVE_REFS}v/{c}": c for c in keep}
        for index in indexes:
            if index.exists():
                tree = self._run(["write-tree", "--missing-ok"], index=index).strip().decode()
                targets[f"{_LIVE_REFS}i/{index.parent.name}"] = tree
        existing = self._run(["for-each-ref", "--format=%(refname)", _LIVE_REFS]).decode().split()
        script = [f"delete {ref}" for ref in existing if ref not in targets]
        script += [f"update {ref} {target}" for ref, target in targets.items()]
        before = _size_of(self.git_dir / "objects")
        if script:
            self._run(["update-ref", "--stdin"], stdin=_lines(script))
        self._run(["-c", "gc.pruneExpire=now", "gc", "--quiet", "--prune=now"])
        return max(0, before - _size_of(self.git_dir / "objects"))


# -- helpers ---------------------------------------------------------------------------------


def dirs_to_text(dirs: Sequence[bytes]) -> list[str]:
    """Empty-directory names as a resource's JSON state keeps them (:func:`domarkx.paths.escape`)."""
    return [paths.escape(d) for d in dirs]


def dirs_from_text(dirs: Sequence[str]) -> tuple[bytes, ...]:
    return tuple(paths.unescape(d) for d in dirs)


def unreadable_note(plugin_type: str, unreadable: Sequence[bytes]) -> str:
    """What to tell the user when :meth:`GitStore.stage` could not read some paths."""
    shown = ", ".join(paths.escape(p) for p in unreadable[:5]) + (" …" if len(unreadable) > 5 else "")
    return (
        f"{plugin_type} could not read {len(unreadable)} path(s), so this version leaves them out"
        f" (or keeps what it had): {shown}; make them readable (chmod u+r) and they are kept next time"
    )


def parse_commit(commit: str, body: bytes) -> Snapshot:
    """A commit's tree and empty directories; a damaged or foreign commit is an error that says so."""
    header, _sep, message = body.partition(b"\n\n")
    first = header.split(b"\n", 1)[0]
    if not first.startswith(b"tree "):
        raise DomarkxError(f"local_shell version {commit} is damaged: it names no tree")
    empty: list[bytes] = []
    for line in message.split(b"\n"):  # never splitlines(): U+2028 and friends are not line breaks here
        if line.startswith(_EMPTY_DIRS):
            try:
                names = json.loads(line[len(_EMPTY_DIRS) :].decode("utf-8"))
                empty = [os.fsencode(name) for name in names]
            except (ValueError, TypeError, UnicodeError) as exc:
                damaged = f"local_shell version {commit} is damaged: its empty-dirs line is unreadable"
                raise DomarkxError(damaged) from exc
    for rel in empty:
        parts = rel.split(b"/")
        if rel.startswith(b"/") or b"\0" in rel or any(p in (b"", b".", b"..") for p in parts):
            raise DomarkxError(f"local_shell version {commit} lists a directory outside its tree")
    return Snapshot(first[5:].decode(), tuple(empty))


def _parses(commit: str, body: bytes) -> bool:
    try:
        parse_commit(commit, body)
    except DomarkxError:
        return False
    return True


def _dirs_json(dirs: Sequence[bytes]) -> bytes:
    """The empty-dirs list as one line of UTF-8 JSON (undecodable bytes as ``\\udcXX`` escapes)."""
    text = json.dumps([os.fsdecode(d) for d in dirs], ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


def _batch(ids: Sequence[str], out: bytes) -> dict[str, tuple[str, bytes]]:
    """``cat-file --batch`` output for ``ids``, in order: each object's type and content (``missing``)."""
    found: dict[str, tuple[str, bytes]] = {}
    pos = 0
    for object_id in ids:
        end = out.index(b"\n", pos)
        header = out[pos:end].split(b" ")
        if len(header) != 3:  # "<id> missing"
            found[object_id] = ("missing", b"")
            pos = end + 1
            continue
        size = int(header[2])
        found[object_id] = (header[1].decode(), out[end + 1 : end + 1 + size])
        pos = end + 1 + size + 1
    return found


_TREE_MODE = "40000"


def _tree(read: Reader, tree_id: str | None) -> dict[bytes, tuple[str, str]]:
    """A tree object's entries: name → (mode, object id)."""
    if tree_id is None:
        return {}
    kind, body = read(tree_id)
    if kind != "tree":
        raise DomarkxError(f"local_shell object {tree_id} is not a tree (the store is damaged)")
    entries: dict[bytes, tuple[str, str]] = {}
    pos = 0
    while pos < len(body):
        space = body.index(b" ", pos)
        nul = body.index(b"\0", space)
        entries[body[space + 1 : nul]] = (body[pos:space].decode(), body[nul + 1 : nul + 21].hex())
        pos = nul + 21
    return entries


def _tree_diff(
    read: Callable[[str], tuple[str, bytes]], old: str | None, new: str | None, prefix: bytes
) -> list[Changed]:
    """The files that differ between two trees, descending only into subtrees whose ids differ."""
    before, after = _tree(read, old), _tree(read, new)
    changes: list[Changed] = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        a_tree = a is not None and a[0] == _TREE_MODE
        b_tree = b is not None and b[0] == _TREE_MODE
        if a_tree or b_tree:
            changes += _tree_diff(
                read, a[1] if a and a_tree else None, b[1] if b and b_tree else None, prefix + name + b"/"
            )
        a_file = None if a is None or a_tree else a
        b_file = None if b is None or b_tree else b
        if a_file or b_file:
            status = "A" if a_file is None else "D" if b_file is None else "M"
            old_mode, old_id = a_file or ("000000", _ZERO_ID)
            new_mode, new_id = b_file or ("000000", _ZERO_ID)
            changes.append(Changed(old_mode, new_mode, old_id, new_id, status, prefix + name))
    return changes


def _is_commit_id(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)


def _only_file_errors(stderr: bytes) -> bool:
    """``add --ignore-errors`` stopped at unreadable files only: nothing fatal, no full disk."""
    text = stderr.decode("utf-8", "replace")
    return "fatal:" not in text and "No space left" not in text and "Disk quota" not in text


def _regular(top: bytes, name: bytes) -> bool:
    try:
        return stat.S_ISREG(os.lstat(os.path.join(top, name)).st_mode)
    except OSError:
        return False


def _size(text: bytes) -> int:
    return int(text) if text.isdigit() else 0


def _size_of(directory: Path) -> int:
    total = 0
    for top, _dirs, files in os.walk(directory):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_size
    return total


def _lines(items: Iterable[str]) -> bytes:
    return "".join(f"{item}\n" for item in items).encode()


def _nul_split(data: bytes) -> list[bytes]:
    return [item for item in data.split(b"\0") if item]


def _nul_list(items: Sequence[bytes]) -> bytes:
    return b"\0".join(items) + b"\0"


def _prune_parents(work: Path, path: Path) -> None:
    """Remove ``path`` and then its parents for as long as they are empty directories."""
    while path != work and work in path.parents and _inside(work, path.parent):
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


def _inside(work: Path, path: Path) -> bool:
    """Whether ``path``, symlinks resolved, is ``work`` or lies under it."""
    base, real = os.path.realpath(work), os.path.realpath(path)
    return real == base or real.startswith(base + os.sep)


@contextlib.contextmanager
def _index_lock(index: Path) -> Iterator[int]:
    """Hold the index's lock file for one git run; any ``index.lock`` found then is stale.

    Every git process that touches this index runs under this lock (and keeps it,
    inherited, until it exits), so a ``index.lock`` present while we hold it was
    left by a process that was killed: without removing it, git refuses to touch
    the index ever again and the resource could never be committed.
    """
    fd = os.open(index.parent / f"{index.name}.flock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        index.with_name(f"{index.name}.lock").unlink(missing_ok=True)
        yield fd
    finally:
        os.close(fd)


def _failure(command: str, stderr: bytes, code: int, index: Path | None = None) -> DomarkxError:
    """A failed git run as one line: its first error line, a full disk said plainly, a broken index told apart."""
    from domarkx.data.store import DISK_FULL_HINT

    if index is not None and any(sign in stderr for sign in _INDEX_DAMAGE):
        return IndexDamaged(f"the git index {index} is damaged")
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    full = [line for line in lines if "No space left on device" in line or "Disk quota exceeded" in line]
    first = next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[0] if lines else "")
    message = f"git {command} failed: {(full or [first])[0] or f'exit code {code}'}"
    return StoreError(message, hint=DISK_FULL_HINT) if full else DomarkxError(message)


def remove_path(path: Path) -> None:
    """Delete a file, link or directory tree (if there), even one a command made read-only."""
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return
    path.chmod(0o700)
    for top, dirs, _files in os.walk(path):
        for name in dirs:
            child = os.path.join(top, name)
            if not os.path.islink(child):  # never chmod through a link to outside
                os.chmod(child, 0o700)
    shutil.rmtree(path)
