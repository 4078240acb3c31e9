"""File tools confined to a root directory: read, write, edit, list.

Portable: standard library only, no domarkx imports, so the same functions run
in-process, in a Jupyter kernel or inside a container. Every path is relative to
``root``; it is resolved with symlinks followed and refused if it lands outside
``root``, so neither ``../x``, ``/etc/passwd`` nor a symlink to ``/etc`` reaches
the host; a file with several hard links is refused too, since another link may
be outside. Only regular files are read or written: a FIFO or a device would make
the call wait forever (holding the instance), so files are opened without
blocking and without following a final symlink, then checked on the open
descriptor. Failures raise :class:`OutsideRootError`, ``ValueError`` or the
``OSError`` the operating system gave; callers turn them into tool errors.
"""

from __future__ import annotations

import errno
import os
import stat

DEFAULT_MAX_BYTES = 100_000
DEFAULT_MAX_ENTRIES = 1000


class OutsideRootError(ValueError):
    """A path that is absolute or resolves outside the root directory."""


def resolve(path: str, root: str = ".") -> str:
    """The real path of ``path`` under ``root``; raise :class:`OutsideRootError` if it escapes.

    Symlinks are resolved before the check, so a link pointing out of the root is
    refused however it is reached. A missing final part is fine (for writes).
    """
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError("path must be a non-empty string")
    if os.path.isabs(path) or path.startswith("~"):
        raise OutsideRootError(f"{path!r} is absolute; give a path relative to the workspace")
    base = os.path.realpath(root)
    full = os.path.realpath(os.path.join(base, path))
    if full != base and not full.startswith(base.rstrip(os.sep) + os.sep):
        raise OutsideRootError(f"{path!r} is outside the workspace")
    return full


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket"}


def _open(full: str, path: str, flags: int) -> int:
    """A descriptor of the regular file at ``full``, checked after opening so nothing can swap it in between.

    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a
    writer; ``O_NOFOLLOW`` refuses a symlink put in place since :func:`resolve`.
    A file with other hard links is refused: one may be outside the root, which
    no path check can see, and writing through it would change that file.
    """
    try:
        fd = os.open(full, flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno not in (errno.ENXIO, errno.ENODEV):  # a FIFO with no reader, a socket, a device
            raise
        raise ValueError(_not_regular(path, os.lstat(full).st_mode)) from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(f"{path} is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(_not_regular(path, info.st_mode))
        if info.st_nlink > 1:
            raise OutsideRootError(
                f"{path!r} has {info.st_nlink} hard links, and another one may be outside the workspace"
            )
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_regular(path: str, mode: int) -> str:
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return f"{path!r} is {kind}; file tools read and write regular files only"


def read_file(path: str, *, root: str = ".", max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The text of a file (UTF-8, undecodable bytes replaced), cut after ``max_bytes``."""
    with os.fdopen(_open(resolve(path, root), path, os.O_RDONLY), "rb") as fh:
        data = fh.read(max_bytes + 1)
        if len(data) <= max_bytes:
            return data.decode("utf-8", errors="replace")
        size = os.fstat(fh.fileno()).st_size
    text = data[:max_bytes].decode("utf-8", errors="ignore")
    return (
        f"{text}\n[… truncated: {path} has {size} bytes, shown {max_bytes}; "
        "read the rest with a command such as tail or sed]"
    )


def write_file(path: str, content: str, *, root: str = ".") -> str:
    """Create or replace a file with ``content`` (UTF-8, newlines kept as given)."""
    full = resolve(path, root)
    if os.path.isdir(full):
        raise IsADirectoryError(f"{path} is a directory")
    os.makedirs(os.path.dirname(full), exist_ok=True)
    data = content.encode("utf-8")
    with os.fdopen(_open(full, path, os.O_WRONLY | os.O_CREAT), "wb") as fh:
        fh.truncate(0)
        fh.write(data)
    return f"wrote {len(data)} bytes to {path}"


def edit_file(path: str, old_text: str, new_text: str, *, root: str = ".") -> str:
    """Replace the one occurrence of ``old_text`` with ``new_text``.

    Exactly one match is required: zero means the model misremembers the file,
    several mean the edit is ambiguous; both are refused with the count.
    """
    if not old_text:
        raise ValueError("old_text must not be empty")
    with os.fdopen(_open(resolve(path, root), path, os.O_RDWR), "r+b") as fh:
        text = fh.read().decode("utf-8")
        count = text.count(old_text)
        if count == 0:
            raise ValueError(f"old_text was not found in {path}; read the file and copy the text exactly")
        if count > 1:
            raise ValueError(f"old_text occurs {count} times in {path}; include more lines so it matches once")
        fh.seek(0)
        fh.truncate(0)
        fh.write(text.replace(old_text, new_text, 1).encode("utf-8"))
    return f"edited {path}"


def list_dir(path: str = ".", *, root: str = ".", max_entries: int = DEFAULT_MAX_ENTRIES) -> str:
    """The entries of a directory, one a line: ``name/`` for directories, ``name -> target`` for links."""
    full = resolve(path, root)
    with os.scandir(full) as it:
        entries = sorted(it, key=lambda e: e.name)
    lines = [_describe(e) for e in entries[:max_entries]]
    if len(entries) > max_entries:
        lines.append(f"[… {len(entries) - max_entries} more entries]")
    return "\n".join(lines) if lines else "(empty directory)"


def _describe(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return f"{entry.name} -> {os.readlink(entry.path)}"
    if entry.is_dir():
        return f"{entry.name}/"
    info = entry.stat()
    executable = "*" if info.st_mode & stat.S_IXUSR else ""
    return f"{entry.name}{executable}  ({info.st_size} bytes)"
