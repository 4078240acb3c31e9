"""Copying files between the host and a resource's work tree (``domarkx cp``), without being led astray.

The work tree is written by commands and models, so it is hostile ground: a
path given in the protocol (bytes, relative to the work tree) may not leave it
(``..``, an absolute path) nor pass through a symlink, whose target a command
chose. Symlinks inside a copied directory are copied as links, never followed.
FIFOs, sockets and devices are refused: reading one may block forever or read
the machine. The whole tree is checked before anything is written.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from domarkx import paths
from domarkx.errors import PathEscapeError, UsageError

_NOFOLLOW = os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0)


def relative(path: bytes) -> bytes:
    """``path`` without empty and ``.`` parts; refused if it leaves its tree: ``..``, absolute, a NUL."""
    parts = [p for p in path.split(b"/") if p not in (b"", b".")]
    if path.startswith(b"/") or b"\0" in path or b".." in parts:
        raise PathEscapeError(f"{paths.escape(path)} leaves the work tree", hint="give a path relative to it")
    return b"/".join(parts)


def inside(work: Path, path: bytes) -> Path:
    """``path`` under ``work`` (see :func:`relative`)."""
    rel = relative(path)
    return work / os.fsdecode(rel) if rel else work


def _through_no_link(work: Path, target: Path) -> None:
    """Refuse a path whose directories, below ``work``, include a symlink."""
    current = work
    for part in target.relative_to(work).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise PathEscapeError(
                f"{paths.escape(os.fsencode(current.relative_to(work)))} is a symlink; domarkx does not follow it"
            )


def _check_tree(top: Path, show: str) -> None:
    """Refuse ``top`` (and, for a directory, everything in it) if it holds a FIFO, socket or device."""
    pending = [top]
    while pending:
        path = pending.pop()
        mode = os.lstat(path).st_mode
        if stat.S_ISDIR(mode):
            pending += [path / name for name in os.listdir(path)]
        elif not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            where = show if path == top else f"{show}/{path.relative_to(top).as_posix()}"
            raise UsageError(f"{where} is not a regular file, directory or symlink: not copied")


def copy_out(work: Path, path: bytes, dest: Path) -> None:
    """Copy a file or directory of the work tree to ``dest`` on the host (into it, if it is a directory)."""
    source = inside(work, path)
    _through_no_link(work, source)
    if not source.exists() and not source.is_symlink():
        raise UsageError(f"no such file or directory: {paths.escape(path)}")
    _check_tree(source, paths.escape(path))
    if dest.is_dir() and source != work:
        dest = dest / source.name
    _copy(source, dest)


def copy_in(work: Path, source: Path, path: bytes) -> Path:
    """Copy a host file or directory into the work tree at ``path`` (into it, if it is a directory)."""
    target = inside(work, path)
    _through_no_link(work, target)
    if not source.exists() and not source.is_symlink():
        raise UsageError(f"no such file or directory: {source}")
    _check_tree(source, str(source))
    if target.is_dir() and not target.is_symlink():
        target = target / source.name
    if any(part.lower() == ".git" for part in target.relative_to(work).parts):
        raise PathEscapeError(f"{paths.escape(path)} is inside a .git directory, which the workspace does not keep")
    target.parent.mkdir(parents=True, exist_ok=True)
    _copy(source, target)
    return target


def _copy(source: Path, dest: Path) -> None:
    """Copy regular files (keeping the executable bit), directories and symlinks as links."""
    mode = os.lstat(source).st_mode
    if stat.S_ISLNK(mode):
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        os.symlink(os.readlink(source), dest)
    elif stat.S_ISDIR(mode):
        dest.mkdir(exist_ok=True)
        for name in sorted(os.listdir(source)):
            _copy(source / name, dest / name)
    else:
        _copy_file(source, dest, executable=bool(mode & stat.S_IXUSR))


def _copy_file(source: Path, dest: Path, *, executable: bool) -> None:
    if dest.is_symlink():
        dest.unlink()  # replace the link itself, never write through it
    fd = os.open(source, os.O_RDONLY | _NOFOLLOW)
    with os.fdopen(fd, "rb") as reader, dest.open("wb") as writer:
        shutil.copyfileobj(reader, writer)
    dest.chmod(0o755 if executable else 0o644)
