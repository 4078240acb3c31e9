"""API keys, held where the commands domarkx starts cannot read them.

Commands run with an environment built from nothing, so ``echo $OPENAI_API_KEY``
prints nothing. But a command that is not confined (``sandbox: none``, or no
bubblewrap) runs as the user, and the user may read ``/proc/<pid>/environ`` of
their own processes: the environment domarkx was *started* with, keys included.
Deleting from ``os.environ`` does not change that block, nor does
``PR_SET_DUMPABLE`` for root.

So when a key variable is set and the command may start code from a document or
a model, :func:`hand_over` runs domarkx again (``exec``, same process, same
arguments) without the key variables, and hands their values over through an
anonymous in-memory file the new program reads and closes first thing. From
then on ``/proc/<domarkx>/environ`` holds no key, and providers read keys with
:func:`get`. Quick commands that start nothing (``log``, ``snapshots ls``…) skip
the second start.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence

FD_ENV = "DOMARKX_KEYS_FD"
"""Set only for the program started by :func:`hand_over`: the descriptor holding the keys."""
_KEY_NAME = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|ACCESS_KEY)(_|$)", re.I)
"""Names of variables that hold secrets: every provider's key variable, and the usual others
(``AWS_SECRET_ACCESS_KEY``, ``GITHUB_TOKEN``…) that a command could read the same way."""
QUICK = frozenset({"import", "export", "snapshots", "prune", "new", "log", "instances", "doctor", "plugins", "trust"})
"""Commands that start no code from a document or a model: they need no second start."""
_held: dict[str, str] = {}


def get(name: str) -> str | None:
    """The value of key variable ``name``: handed over at start-up, else from the environment."""
    return _held.get(name) or os.environ.get(name) or None


def is_key(name: str) -> bool:
    return bool(_KEY_NAME.search(name))


def hand_over(args: Sequence[str]) -> None:
    """Take the keys a previous start handed over, or start again without them in the environment.

    Does not return when it starts again; does nothing off Linux (no ``/proc``
    to protect, no anonymous files) or when there is nothing to protect.
    """
    if FD_ENV in os.environ:
        _receive(os.environ.pop(FD_ENV))
        return
    keys = {name: value for name, value in os.environ.items() if is_key(name)}
    command = _command(args)
    if not keys or not sys.platform.startswith("linux") or command is None or command in QUICK:
        return
    import json  # here, as in _receive: a start with no key to hand over never needs it

    fd = os.memfd_create("domarkx-keys", 0)  # inherited by the next program, closed by it at once
    os.write(fd, json.dumps(keys).encode())
    os.lseek(fd, 0, os.SEEK_SET)
    env = {name: value for name, value in os.environ.items() if name not in keys}
    env[FD_ENV] = str(fd)
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
    try:
        os.execve(sys.executable, [argv[0], *argv[1:]], env)  # noqa: S606 - the same program, same arguments
    except OSError:  # cannot start again: go on as we are, keys in the environment as before
        os.close(fd)


def _receive(fd_text: str) -> None:
    import json

    try:
        fd = int(fd_text)
        with os.fdopen(fd, "rb") as fh:
            data = json.loads(fh.read())
    except (ValueError, OSError):
        return
    if isinstance(data, dict):
        _held.update({str(k): str(v) for k, v in data.items()})


def _command(args: Sequence[str]) -> str | None:
    """The command name in ``args`` (the first argument that is not a global option)."""
    return next((arg for arg in args if not arg.startswith("-")), None)
