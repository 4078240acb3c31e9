"""Confining ``local_shell`` commands with bubblewrap, when it is there.

Inside the sandbox a command sees the system read-only (``/usr``, ``/etc`` and
the ``/bin``/``/lib`` links), its work tree read-write at ``/workspace``, a
private ``/tmp`` as home, fresh ``/proc`` and ``/dev``, no network (only its own
loopback), no capabilities and at most :data:`MAX_PROCESSES` processes; it dies
with domarkx.

Run by root, bubblewrap's user namespace would not help: uid 0 inside maps to
root outside, which still reads root-only files (``/etc/shadow-``,
``/etc/docker/key.json``). So as root the sandbox gets no user namespace, and
the command drops to :data:`SANDBOX_UID` (``nobody``) with no capabilities and
``no_new_privs`` before it starts; the work tree is handed to that uid first.

Without bubblewrap the command runs as the user with only a scrubbed
environment and a time-out, which is not a security boundary; domarkx says so
once per process on stderr (not via ``warnings``, which the test suite turns
into errors). It still runs under a small supervisor that kills the command's
whole process group when domarkx dies, however it dies.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from domarkx.tools.portable import shell
from domarkx.workspace.plugin import ToolError

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
_HIDDEN_FILES = ("/etc/shadow", "/etc/gshadow")
SANDBOX_TMP = "/tmp"  # noqa: S108 - a fresh tmpfs inside the sandbox, not the host's /tmp
"""The sandbox's private temporary directory, also the command's home."""
SANDBOX_WORK = "/workspace"
"""Where the work tree appears inside the sandbox: the same path for every resource, so
absolute paths a command writes (a virtualenv's scripts, say) still work in a fork."""
SANDBOX_UID = 65534
"""The user (``nobody``) that commands run as when domarkx runs as root."""
MAX_PROCESSES = 1024
"""Processes a sandboxed command may run at once, so a fork bomb stalls instead of the machine.

``ulimit -u`` counts processes per user: inside bubblewrap's user namespace the
limit covers the sandbox alone; run by root, commands run as :data:`SANDBOX_UID`,
whose processes all count together.
"""
_AS_NOBODY = (
    f"chown -R -h {SANDBOX_UID}:{SANDBOX_UID} {SANDBOX_WORK} 2>/dev/null; chmod 1777 {SANDBOX_TMP}; "
    f"ulimit -u {MAX_PROCESSES}; {{limit}}exec setpriv --reuid={SANDBOX_UID} --regid={SANDBOX_UID} --clear-groups "
    '--bounding-set=-all --inh-caps=-all --no-new-privs -- "$@"'
)
"""Run as root inside the sandbox (which sees only the work tree writable, so ``chown`` reaches
nothing else, and ``-h`` never follows a link): hand the tree over, then drop to nobody."""
_SUPERVISE = (
    '[ "$PPID" = "$1" ] || exit 137; shift; trap "kill -KILL 0" TERM; {limit}"$@" & child=$!; '
    'while :; do wait "$child"; status=$?; kill -0 "$child" 2>/dev/null || exit "$status"; done'
)
"""An unconfined command's parent: ``setpriv --pdeathsig TERM`` delivers TERM when domarkx dies,
and the trap kills the command's whole process group (domarkx starts it as a session of its own)."""
_warned: set[str] = set()


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _as_root() -> bool:
    return os.geteuid() == 0


def base_args(*, drop: bool = False) -> list[str]:
    """bubblewrap and the options every sandbox shares: new namespaces, the system read-only, a private /tmp.

    Callers add their own binds (the work tree, an interpreter) and then :func:`limited`
    with the same ``drop``. ``drop``: run by root, the command becomes :data:`SANDBOX_UID`
    (no user namespace, whose uid 0 would be root, and capabilities until the drop);
    otherwise root stays uid 0 in a user namespace without capabilities, which still
    reads root-only files.
    """
    bwrap = bwrap_path()
    assert bwrap is not None
    argv = [bwrap, "--die-with-parent", "--new-session"]
    if drop and _as_root():
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        argv += ["--unshare-all", "--cap-drop", "ALL"]
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in _HIDDEN_FILES:
        argv += ["--ro-bind-try", os.devnull, path]
    return [*argv, "--proc", "/proc", "--dev", "/dev", "--tmpfs", SANDBOX_TMP]


def limited(*, drop: bool = False, max_file: int | None = None) -> list[str]:
    """The end of a bubblewrap argv: the command that follows runs with at most :data:`MAX_PROCESSES`
    (as :data:`SANDBOX_UID` with ``drop`` when root, its files capped at ``max_file`` bytes)."""
    limit = _file_limit(max_file)
    if drop and _as_root():
        return ["--", "bash", "-c", _AS_NOBODY.format(limit=limit), "domarkx-sandbox"]
    return ["--", "bash", "-c", f'ulimit -u {MAX_PROCESSES} 2>/dev/null; {limit}exec "$@"', "domarkx-sandbox"]


def wrapper(work: Path, max_file: int | None = None) -> list[str]:
    """The bubblewrap argv prefix that confines a command to ``work`` (and its files to ``max_file`` bytes)."""
    binds = ["--bind", str(work), SANDBOX_WORK, "--chdir", SANDBOX_WORK]
    return [*base_args(drop=True), *binds, *limited(drop=True, max_file=max_file)]


def _file_limit(max_file: int | None) -> str:
    """``ulimit -f`` (in KiB) so that no file a command writes outgrows the workspace's ``max_size``."""
    return "" if max_file is None else f"ulimit -f {-(-max_file // 1024)}; "


@functools.cache
def bwrap_works() -> bool:
    """Whether bubblewrap (and, for root, setpriv) can start here; probed once, in an empty directory."""
    if bwrap_path() is None or (_as_root() and shutil.which("setpriv") is None):
        return False
    probe = Path(tempfile.mkdtemp(prefix="domarkx-probe-"))
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
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return done.returncode == 0


def confinement(work: Path, mode: str, *, max_file: int | None = None) -> tuple[list[str], dict[str, str] | None]:
    """The argv prefix and environment a ``local_shell`` command runs with (``mode``: auto, bwrap, none).

    ``None`` as environment means :func:`~domarkx.tools.portable.shell.minimal_env`
    with a fresh private home, which the unconfined command gets.
    """
    if mode != "none":
        if bwrap_works():
            return wrapper(work, max_file), shell.minimal_env(SANDBOX_TMP)
        if mode == "bwrap":
            raise ToolError("run_command: bubblewrap was configured but cannot run here")
        warn_unconfined("bubblewrap (bwrap) is not available")
    return supervisor(max_file), None


def supervisor(max_file: int | None = None) -> list[str]:
    """The argv prefix that ends an unconfined command with domarkx (nothing where setpriv is missing)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return []
    script = _SUPERVISE.format(limit=_file_limit(max_file))
    return [setpriv, "--pdeathsig", "TERM", "--", "bash", "-c", script, "domarkx-supervise", str(os.getpid())]


def tree_size(top: Path, limit: int) -> int:
    """Bytes of the files under ``top`` (links not followed), counted until past ``limit``.

    Apparent sizes, since that is what a commit reads and stores.
    """
    total = 0
    pending = [str(top)]
    while pending and total <= limit:
        with contextlib.suppress(OSError), os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def brief(result: Any) -> str:
    """A command's result in a line or two, for an error that replaces it."""
    if not isinstance(result, dict) or "exit_code" not in result:
        return ""
    tail = " ".join(" ".join(str(result.get(key) or "")[-300:].split()) for key in ("stdout", "stderr")).strip()
    return f" (the command's exit code was {result['exit_code']}" + (f"; it printed …{tail})" if tail else ")")


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
