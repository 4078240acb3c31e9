"""Running the installed ``domarkx`` as a user does: the console script, on a pseudo-terminal when that matters."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path


def script() -> str:
    """The installed ``domarkx`` console script of the running interpreter's environment."""
    beside = Path(sys.executable).parent / "domarkx"
    found = str(beside) if beside.exists() else shutil.which("domarkx")
    assert found, "the domarkx console script is not installed (pip install -e .)"
    return found


def on_a_terminal(args: list[str], env: dict[str, str], *, expect: int = 0) -> bytes:
    """Run the script with stdout and stderr on a pseudo-terminal; all it wrote there."""
    leader, follower = pty.openpty()
    try:
        done = subprocess.Popen([script(), *args], stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env)
        os.close(follower)
        chunks: list[bytes] = []
        while True:
            ready, _, _ = select.select([leader], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the other side closed: Linux says EIO
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert done.wait(60) == expect, b"".join(chunks)
        return b"".join(chunks)
    finally:
        os.close(leader)
