"""Which instance locks another process holds, seen without taking them.

``instances ls`` says an instance is *busy* when a process works on it
(:meth:`Store.hold`). Probing by taking the lock, even for an instant, could
make that process's own attempt fail; so on Linux the kernel's table of held
locks (``/proc/locks``) is read instead, and matched by inode. Elsewhere the
lock is probed, shared and non-blocking, as the only way left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable

PROC_LOCKS = "/proc/locks"


def held(directory: str | os.PathLike[str], names: Iterable[str]) -> set[str]:
    """The ones among lock files ``directory/name`` that some process holds with ``flock``."""
    inodes: dict[int, str] = {}
    for name in names:
        with contextlib.suppress(OSError):  # no file: nobody ever held it, or it was released for good
            inodes[os.stat(os.path.join(directory, name)).st_ino] = name
    if not inodes:
        return set()
    try:
        with open(PROC_LOCKS, encoding="ascii", errors="replace") as fh:
            table = fh.read()
    except OSError:
        return {name for name in inodes.values() if _probe(os.path.join(directory, name))}
    found: set[str] = set()
    for line in table.splitlines():
        fields = line.split()  # "3: FLOCK  ADVISORY  WRITE 4242 fe:00:2146474 0 EOF"; waiters have "->" second
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        inode = fields[5].rpartition(":")[2]
        if inode.isdigit() and int(inode) in inodes:
            found.add(inodes[int(inode)])
    return found


def _probe(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases a lock it took
    return False
