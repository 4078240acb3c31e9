"""Confining ``local_shell`` commands with bubblewrap, when it is there.

Inside the sandbox a command sees the system read-only (``/usr``, ``/etc`` and
the ``/bin``/``/lib`` links), its work tree read-write at ``/workspace``, a
private ``/tmp`` as home, fresh ``/proc`` and ``/dev``, no network (only its own
loopback), no capabilities and at most :data:`MAX_PROCESSES` processes; it dies
with domarkx. Without bubblewrap the command runs as the user with only a
scrubbed environment and a time-out, which is not a security boundary; domarkx
says so once per process on stderr (not via ``warnings``, which the test suite
turns into errors).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
_HIDDEN_FILES = ("/etc/shadow", "/etc/gshadow")
SANDBOX_TMP = "/tmp"  # noqa: S108 - a fresh tmpfs inside the sandbox, not the host's /tmp
"""The sandbox's private temporary directory, also the command's home."""
SANDBOX_WORK = "/workspace"
"""Where the work tree appears inside the sandbox: the same path for every resource, so
absolute paths a command writes (a virtualenv's scripts, say) still work in a fork."""
MAX_PROCESSES = 1024
"""Processes a sandboxed command may run at once, so a fork bomb stalls instead of the machine.

``ulimit -u`` counts processes per user *namespace*, so inside bubblewrap's the
limit covers the sandbox alone, whatever else you run. The kernel exempts root
(uid 0 outside) from it; there only the time-out contains a fork bomb.
"""
_warned: set[str] = set()


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def base_args() -> list[str]:
    """bubblewrap and the options every sandbox shares: new namespaces, the system read-only, a private /tmp.

    Callers add their own binds (the work tree, an interpreter) and then :func:`limited`.
    """
    bwrap = bwrap_path()
    assert bwrap is not None
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in _HIDDEN_FILES:
        argv += ["--ro-bind-try", os.devnull, path]
    return [*argv, "--proc", "/proc", "--dev", "/dev", "--tmpfs", SANDBOX_TMP]


def limited() -> list[str]:
    """The end of a bubblewrap argv: the command that follows runs with at most :data:`MAX_PROCESSES`."""
    return ["--", "bash", "-c", f'ulimit -u {MAX_PROCESSES} 2>/dev/null; exec "$@"', "domarkx-sandbox"]


def wrapper(work: Path) -> list[str]:
    """The bubblewrap argv prefix that confines a command to ``work``."""
    return [*base_args(), "--bind", str(work), SANDBOX_WORK, "--chdir", SANDBOX_WORK, *limited()]


@functools.cache
def bwrap_works() -> bool:
    """Whether bubblewrap can start here (user namespaces may be disabled); probed once."""
    if bwrap_path() is None:
        return False
    probe = Path(tempfile.gettempdir())
    try:
        done = subprocess.run(
            [*wrapper(probe), "true"],
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def warn_unconfined(reason: str, what: str = "local_shell commands") -> None:
    """Say once per process (and per kind of thing confined) that ``what`` runs unconfined."""
    if what in _warned:
        return
    _warned.add(what)
    sys.stderr.write(
        f"domarkx: warning: {reason}; {what} run unconfined as you "
        "(scrubbed environment and time-out only) - this is not a security boundary. "
        "Install bubblewrap (apt-get install bubblewrap) to confine them.\n"
    )
