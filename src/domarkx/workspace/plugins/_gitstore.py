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

A version is a commit. Git cannot store an empty directory, so the commit
message lists them (``empty-dirs: [...]``), and load recreates them. Loading
works like ``git checkout``: only the paths that differ between the index and
the target tree are touched, so its cost follows the size of the change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from domarkx.errors import DomarkxError, StoreError, UsageError

_IDENTITY = {
    "GIT_AUTHOR_NAME": "domarkx",
    "GIT_AUTHOR_EMAIL": "domarkx@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+0000",
    "GIT_COMMITTER_NAME": "domarkx",
    "GIT_COMMITTER_EMAIL": "domarkx@localhost",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+0000",
}
# Versions are reachable from no ref (a ref per commit would cost a process each), so
# nothing may ever collect unreachable objects.
_CONFIG = {"gc.auto": "0", "gc.pruneExpire": "never"}
# Highest-precedence attributes: no line-ending, filter or encoding conversion, whatever
# .gitattributes files a command writes into the work tree.
_ATTRIBUTES = "* -text -eol -filter -ident -working-tree-encoding\n"
_MESSAGE = "domarkx local_shell"
_EMPTY_DIRS = "empty-dirs: "


@dataclass(frozen=True)
class Snapshot:
    """What a version records: the tree and the empty directories beside it."""

    tree: str
    empty_dirs: tuple[str, ...]


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
            # objects reach the disk before the store records a version naming them
            # (batched: one flush per git run, not one per file)
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
        args: list[str],
        *,
        git_dir: Path | None = None,
        work: Path | None = None,
        index: Path | None = None,
        stdin: str | None = None,
    ) -> str:
        assert self._git is not None
        env = self._env(git_dir or self.git_dir, work, index)
        cwd = work or git_dir or self.git_dir
        with contextlib.ExitStack() as stack:
            held = () if index is None else (stack.enter_context(_index_lock(index)),)
            try:
                done = subprocess.run(
                    [self._git, *args],
                    cwd=cwd,
                    env=env,
                    input=stdin,
                    capture_output=True,
                    text=True,
                    check=False,
                    pass_fds=held,  # git holds the lock too, should this process die first
                )
            except OSError as exc:
                raise DomarkxError(f"cannot run git: {exc}") from exc
        if done.returncode != 0:
            raise _failure(args[0], done.stderr, done.returncode)
        return done.stdout

    def missing(self, commits: Collection[str]) -> set[str]:
        """Which of these commits cannot be checked out: absent, not commits, or with objects lost."""
        wanted = sorted(set(commits))
        if not wanted:
            return set()
        out = self._run(["cat-file", "--batch-check=%(objecttype)"], stdin="".join(f"{c}\n" for c in wanted))
        found = [c for c, kind in zip(wanted, out.splitlines(), strict=True) if kind == "commit"]
        absent = set(wanted) - set(found)
        if found and self._objects_lost(found):  # rare: find out which commit it was
            absent |= {c for c in found if self._objects_lost([c])}
        return absent

    def _objects_lost(self, commits: list[str]) -> bool:
        out = self._run(["rev-list", "--objects", "--no-walk", "--missing=print", "--stdin"], stdin="\n".join(commits))
        return any(line.startswith("?") for line in out.splitlines())

    def stage(self, work: Path, index: Path) -> Snapshot:
        """Bring the index in line with the work tree and describe it; cheap when little changed."""
        self._run(["add", "--all", "--force", "--", "."], work=work, index=index)
        tree = self._run(["write-tree"], work=work, index=index).strip()
        return Snapshot(tree, self._empty_dirs(work, index))

    def _empty_dirs(self, work: Path, index: Path) -> tuple[str, ...]:
        """Directories holding no files: after ``add --all`` they are all that is untracked."""
        out = self._run(["ls-files", "-z", "--others", "--directory"], work=work, index=index)
        found: list[str] = []
        for entry in filter(None, out.split("\0")):
            if not entry.endswith("/"):
                continue
            for top, dirs, _files in os.walk(work / entry):
                if not dirs:
                    found.append(Path(top).relative_to(work).as_posix())
        return tuple(sorted(found))

    def commit(self, snapshot: Snapshot, parent: str | None) -> str:
        message = _MESSAGE + "\n"
        if snapshot.empty_dirs:
            message += f"\n{_EMPTY_DIRS}{json.dumps(list(snapshot.empty_dirs), ensure_ascii=False)}\n"
        args = ["commit-tree", snapshot.tree, "-m", message]
        if parent:
            args += ["-p", parent]
        return self._run(args).strip()

    def read(self, commit: str) -> Snapshot:
        """The tree and empty directories of a commit; a usage error if it is not one of ours."""
        if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
            raise UsageError(f"{commit!r} is not a local_shell version", hint="versions are 40-hex commit ids")
        try:
            text = self._run(["cat-file", "commit", commit])
        except DomarkxError as exc:
            raise UsageError(f"unknown local_shell version {commit}") from exc
        header, _, message = text.partition("\n\n")
        tree = header.split("\n", 1)[0].removeprefix("tree ")
        empty: list[str] = []
        for line in message.splitlines():
            if line.startswith(_EMPTY_DIRS):
                empty = json.loads(line.removeprefix(_EMPTY_DIRS))
        if any(Path(rel).is_absolute() or ".." in Path(rel).parts for rel in empty):
            raise DomarkxError(f"local_shell version {commit} lists a directory outside its tree")
        return Snapshot(tree, tuple(empty))

    def discard_untracked(self, work: Path, index: Path) -> list[str]:
        """Delete whatever the index does not know; return the tracked paths changed since.

        Together with :meth:`switch` this is ``git checkout -f`` + ``git clean
        -fdx``: after it, every difference from the index is a listed path.
        """
        out = self._run(["ls-files", "-z", "--others", "--directory"], work=work, index=index)
        for entry in filter(None, out.split("\0")):
            path = work / entry.rstrip("/")
            if not _inside(work, path.parent):
                raise DomarkxError(f"cannot remove {entry}: a symlink in its path leads out of the work tree")
            remove_path(path)
        return list(filter(None, self._run(["diff-files", "-z", "--name-only"], work=work, index=index).split("\0")))

    def switch(
        self,
        work: Path,
        index: Path,
        current_empty: tuple[str, ...],
        target: Snapshot,
        stale: Sequence[str] = (),
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
        fields = raw.split("\0")
        removed: list[str] = []
        written: set[str] = set(stale)
        for header, path in zip(fields[0::2], fields[1::2], strict=False):
            if not header.startswith(":"):
                continue
            if not header.endswith(" D"):
                written.add(path)
                continue
            written.discard(path)
            if not _inside(work, (work / path).parent):
                raise DomarkxError(f"cannot remove {path}: a symlink in its path leads out of the work tree")
            remove_path(work / path)
            _prune_parents(work, (work / path).parent)
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
        for rel in current_empty:
            if rel not in target.empty_dirs:
                _prune_parents(work, work / rel)
        for rel in target.empty_dirs:
            (work / rel).mkdir(parents=True, exist_ok=True)


def _nul_list(paths: Sequence[str]) -> str:
    return "\0".join(paths) + "\0"


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


def _failure(command: str, stderr: str, code: int) -> DomarkxError:
    """A failed git run as one line: its first error line, and a full disk said plainly."""
    from domarkx.data.store import DISK_FULL_HINT

    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
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
