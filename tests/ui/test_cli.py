"""`domarkx ui` as a command: its address, its errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from .conftest import start_ui, stop_ui


def run_ui(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "domarkx", "ui", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"DOMARKX_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def test_prints_a_tokened_address_on_loopback(domarkx_home: Path) -> None:
    running = start_ui(domarkx_home)
    try:
        assert running.url.startswith("http://127.0.0.1:") and len(running.token) >= 40
    finally:
        stop_ui(running)


def test_a_taken_or_impossible_port_is_one_line(domarkx_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_ui(domarkx_home, "--port", str(port))
    assert busy.returncode == 2
    assert busy.stderr.splitlines()[0] == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    impossible = run_ui(domarkx_home, "--port", "99999")
    assert impossible.returncode == 2 and impossible.stderr.startswith("error: --port 99999 is not a port")
    assert "Traceback" not in busy.stderr + impossible.stderr
