"""Helpers for the MCP tests: the real ``domarkx mcp`` in a subprocess, driven by the official SDK's client."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import mcp
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from domarkx.data.store import Store
from domarkx.session.instance import InstanceManager
from domarkx.workspace.plugin import resource_path

DOMARKX = str(Path(sys.executable).parent / "domarkx")
"""The installed entry point, as a client's configuration would start it."""
SITE_PACKAGES = str(Path(mcp.__file__).resolve().parents[1])
NOTES_SERVER = Path(__file__).parent / "servers" / "notes_server.py"
CLIENT = types.Implementation(name="test-client", version="1.2.3")
WAIT = 60.0
"""How long a test waits for something that takes milliseconds, before calling it a failure."""


@contextlib.asynccontextmanager
async def stdio(ref: str, home: Path, errlog: IO[str]) -> AsyncIterator[Client]:
    """``domarkx mcp REF`` started by the SDK over stdio, its stderr in ``errlog``."""
    params = StdioServerParameters(command=DOMARKX, args=["mcp", ref], env={"DOMARKX_HOME": str(home)})
    async with Client(stdio_client(params, errlog=errlog), client_info=CLIENT) as client:
        yield client


async def call(client: Client, name: str, **arguments: Any) -> tuple[str, bool]:
    """(text, is_error) of one tool call."""
    result = await client.call_tool(name, arguments)
    return "\n".join(getattr(block, "text", "") for block in result.content), bool(result.is_error)


@contextlib.contextmanager
def manager(home: Path) -> Iterator[InstanceManager]:
    with Store(home) as store:
        yield InstanceManager(store)


def work_dir(home: Path, instance: str, resource: int = 0) -> Path:
    """The host directory of an instance's shell resource."""
    with Store(home) as store:
        instances = InstanceManager(store)
        workspace = instances.workspaces.open(instances.get(instance).workspace_id)
        return resource_path(home, workspace.resources[resource].id) / "work"


def tree(top: Path) -> dict[str, str]:
    """Every file and link under ``top``: path → content (``-> target`` for a link)."""
    found: dict[str, str] = {}
    for path in sorted(top.rglob("*")):
        name = path.relative_to(top).as_posix()
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_text(errors="replace")
    return found


def wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def wait_for_line(path: Path, needle: str, process: subprocess.Popen[bytes] | None = None) -> str:
    """The first line of the file ``path`` containing ``needle``, once it is written (while ``process`` lives)."""
    found: list[str] = []

    def seen() -> bool:
        text = path.read_text(errors="replace")
        found[:] = [line for line in text.splitlines() if needle in line]
        assert found or process is None or process.poll() is None, f"the server exited: {text}"
        return bool(found)

    wait_for(seen, f"{needle!r} in {path.name}")
    return found[0]


class HttpServer:
    """``domarkx mcp REF --transport http`` in a subprocess; its URL and token read from what it prints."""

    def __init__(self, ref: str, home: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        environ = {**os.environ, "DOMARKX_HOME": str(home), **(env or {})}
        with log.open("w") as sink:
            self.process = subprocess.Popen(
                [DOMARKX, "mcp", ref, "--transport", "http"], stdout=subprocess.DEVNULL, stderr=sink, env=environ
            )
        line = wait_for_line(log, "serving over MCP at ", self.process)
        self.url = line.split(" at ", 1)[1].strip()
        self.port = int(re.search(r":(\d+)/mcp", self.url).group(1))  # type: ignore[union-attr]
        token = [line for line in log.read_text().splitlines() if "token" in line]
        self.token = token[0].rsplit(": ", 1)[1].strip() if token else ""

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(WAIT)


@contextlib.contextmanager
def http_server(ref: str, home: Path, log: Path, env: dict[str, str] | None = None) -> Iterator[HttpServer]:
    server = HttpServer(ref, home, log, env)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()
