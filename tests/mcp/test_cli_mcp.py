"""``domarkx mcp`` on the command line: bad input is one line on stderr, never a word on the protocol's stdout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mcphelp import DOMARKX, WAIT


def domarkx(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOMARKX_HOME": str(home)}
    return subprocess.run(
        [DOMARKX, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=WAIT
    )


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("mcp", "nope"), 2, "error: no instance or snapshot matches 'nope'"),
        (("mcp", "-"), 2, "error: domarkx mcp cannot read a document from stdin"),
        (("mcp", "missing.md"), 2, "error: no such file: missing.md"),
        (("mcp", "nope", "--transport", "carrier-pigeon"), 2, "error: invalid value for '--transport'"),
        (("mcp", "nope", "--transport", "http", "--port", "70000"), 2, "error: --port 70000 is not a port number"),
    ],
)
def test_bad_input(domarkx_home: Path, args: tuple[str, ...], code: int, needle: str) -> None:
    result = domarkx(*args, home=domarkx_home)
    assert result.returncode == code, result
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_port_in_use(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text("## user\n\n> x\n")
    instance = cli("run", str(doc), "-q").out.strip()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = domarkx("mcp", instance, "--transport", "http", "--port", port, home=domarkx_home)
    assert result.returncode == 1 and f"error: cannot listen on 127.0.0.1:{port}" in result.stderr


def test_a_stopped_instance_is_not_served(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text("## user\n\n> x\n")
    instance = cli("run", str(doc), "-q").out.strip()
    cli("instances", "stop", instance)
    result = domarkx("mcp", instance, home=domarkx_home)
    assert result.returncode == 2 and "is stopped" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("args", [("--help",), ("mcp", "--help"), ("reset", "--help"), ("instances", "ls")])
def test_the_sdk_is_imported_only_to_serve(domarkx_home: Path, args: tuple[str, ...]) -> None:
    code = (
        "import sys; from domarkx.cli import main; main(list(sys.argv[1:]));"
        " print('LOADED', sorted(m for m in ('mcp', 'uvicorn', 'starlette', 'anyio') if m in sys.modules))"
    )
    env = {**os.environ, "DOMARKX_HOME": str(domarkx_home)}
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "LOADED []"
