"""Instance locks: taking one to work (:meth:`Store.hold`), and peeking whether another process has it.

``instances ls`` says an instance is *busy* while a process works on it. It
peeks: it takes the lock *shared* and non-blocking, and lets go at once. The
kernel's own table (``/proc/locks``) would say the same without touching the
lock, but reading it waits for an RCU grace period (~10 ms, a tenth of a quick
command) and stalls every ``flock`` on the machine meanwhile. A peek holds the
lock for microseconds; so that a process taking the lock at that very moment
is not told "busy" by it, :func:`take` tries again a few times within a tenth
of a second before giving up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterable

RETRIES = (0.002, 0.01, 0.05)
"""Seconds :func:`take` waits between attempts: far longer than a peek holds a lock, far shorter than a turn."""


def take(fd: int) -> bool:
    """Lock ``fd`` exclusively for this process; False if another process holds it (after :data:`RETRIES`)."""
    for wait in (*RETRIES, None):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait is None:
                return False
            time.sleep(wait)
        else:
            return True
    raise AssertionError("unreachable")


def held(directory: str | os.PathLike[str], names: Iterable[str]) -> set[str]:
    """The ones among lock files ``directory/name`` that some process holds (a peek each)."""
    return {name for name in names if _peek(os.path.join(directory, name))}


def _peek(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no file: nobody ever held it, or it was released for good
        return False
    try:
        with contextlib.suppress(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        return True
    finally:
        os.close(fd)  # lets go of the shared lock at once
