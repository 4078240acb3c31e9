"""Scratch space for transfers: beside the store (same disk), cleaned even after a kill.

Plugin packs, unpacked bundles and downloads can be large, so they go under
the home rather than a small ``/tmp``, but not into the store's ``tmp/``, whose
rule is that anything there is a partial blob write. Each transfer holds a lock
on its own directory; the next transfer removes directories whose lock is
free, which is what a killed process leaves (the kernel drops its lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from domarkx.data.store import Store, disk_error

_LOCK = ".lock"
_YOUNG = 60.0
"""Seconds a directory without its lock yet is taken for one being made."""


@contextlib.contextmanager
def scratch(store: Store) -> Iterator[Path]:
    """A private directory for one transfer, removed when it ends."""
    base = store.home / "transfer"
    path = base / f"tmp-{uuid.uuid4().hex}"
    try:
        path.mkdir(parents=True)
        fd = os.open(path / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise disk_error(exc, f"making scratch space in {base}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _sweep(base, keep=path)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def _sweep(base: Path, *, keep: Path) -> None:
    """Remove the directories of transfers that were killed (their lock is free)."""
    for other in base.glob("tmp-*"):
        if other == keep:
            continue
        try:
            fd = os.open(other / _LOCK, os.O_RDWR)
        except OSError:  # killed before it made its lock, or making it right now
            with contextlib.suppress(OSError):
                if time.time() - other.stat().st_mtime > _YOUNG:
                    shutil.rmtree(other, ignore_errors=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # another transfer is using it
        else:
            shutil.rmtree(other, ignore_errors=True)
        finally:
            os.close(fd)
