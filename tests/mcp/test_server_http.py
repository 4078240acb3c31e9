"""``domarkx mcp --transport http``: loopback only, a token, no foreign Origin; the same recorded session."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcphelp import CLIENT, DOMARKX, HttpServer, call, http_server, manager, tree, work_dir

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}},
}
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def new_instance(cli, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text("## user\n\n> work\n")
    return str(cli("run", str(doc), "-q").out.strip())


async def agent(server: HttpServer) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {server.token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(server.url, http_client=http), client_info=CLIENT) as client,
    ):
        assert "checkpoint" in {t.name for t in (await client.list_tools()).tools}
        await call(client, "run_command", command="echo one > a.txt")
        text, _ = await call(client, "checkpoint", note="a")
        point = int(re.search(r"is message (\d+)", text).group(1))  # type: ignore[union-attr]
        await call(client, "run_command", command="echo two > b.txt; rm a.txt")
        text, failed = await call(client, "rewind", to=point)
        assert not failed, text
        forked, _ = await call(client, "fork", at=point)
        return point, re.search(r"new instance (\w+)", forked).group(1)  # type: ignore[union-attr]


def test_an_http_session_is_recorded_like_any_other(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    instance = new_instance(cli, tmp_path)
    with http_server(instance, domarkx_home, tmp_path / "server.log") as server:
        assert server.url.startswith("http://127.0.0.1:") and len(server.token) >= 32
        point, fork = anyio.run(agent, server)
        assert server.stop() in (0, -15)  # uvicorn shuts down cleanly, then re-raises the signal
    assert tree(work_dir(domarkx_home, instance)) == {"a.txt": "one\n"}
    assert tree(work_dir(domarkx_home, fork)) == {"a.txt": "one\n"}
    exported = cli("export", instance).out
    assert re.findall(r"tool-call id=mcp_\w+ name=(\w+)", exported) == ["run_command", "checkpoint", "rewind", "fork"]
    assert '"name": "test-client"' in exported
    assert json.loads(cli("log", instance, "--json").out)[point]["summary"].startswith("checkpoint 'a'")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer not-the-token"}, 401),
        ({"Authorization": "Basic {token}"}, 401),
        ({"Authorization": "Bearer {token}", "Origin": "http://evil.example"}, 403),
        ({"Authorization": "Bearer {token}", "Origin": "http://localhost:1"}, 403),
        ({"Origin": "http://evil.example"}, 403),
        ({"Authorization": "Bearer {token}", "Host": "evil.example"}, 421),
        ({"Authorization": "Bearer {token}"}, 200),
        ({"Authorization": "Bearer {token}", "Origin": "http://127.0.0.1:{port}"}, 200),
    ],
    ids=[
        "no-token",
        "wrong-token",
        "basic",
        "foreign-origin",
        "other-port",
        "origin-no-token",
        "rebinding-host",
        "token",
        "own-origin",
    ],
)
def test_requests_need_the_token_and_a_local_origin(
    shared: tuple[HttpServer, Path, str], headers: dict[str, str], status: int
) -> None:
    server, home, instance = shared
    sent = {k: v.format(token=server.token, port=server.port) for k, v in headers.items()}
    reply = httpx2.post(server.url, json=INIT, headers={**JSON_HEADERS, **sent}, timeout=60)
    assert reply.status_code == status, reply.text
    if status != 200:
        assert server.token not in reply.text
    with manager(home) as instances:
        assert len(instances.get(instance).messages) == 1  # nothing was recorded


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, Path, str]]:
    """One server for the table of requests (each only knocks at the door)."""
    home = tmp_path_factory.mktemp("shared-home")
    doc = home / "doc.md"
    doc.write_text("## user\n\n> work\n")
    env = {**os.environ, "DOMARKX_HOME": str(home)}
    made = subprocess.run([DOMARKX, "run", str(doc), "-q"], env=env, capture_output=True, text=True, check=True)
    instance = made.stdout.strip()
    with http_server(instance, home, home / "server.log") as server:
        yield server, home, instance


def test_a_chosen_token_is_used_and_not_printed(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    instance = new_instance(cli, tmp_path)
    chosen = "a-token-the-user-chose-0123456789"
    log = tmp_path / "server.log"
    with http_server(instance, domarkx_home, log, env={"DOMARKX_MCP_TOKEN": chosen}) as server:
        ok = httpx2.post(server.url, json=INIT, headers={**JSON_HEADERS, "Authorization": f"Bearer {chosen}"})
    assert ok.status_code == 200
    assert chosen not in log.read_text() and "DOMARKX_MCP_TOKEN" in log.read_text()


def test_a_weak_chosen_token_is_refused(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    instance = new_instance(cli, tmp_path)
    monkeypatch.setenv("DOMARKX_MCP_TOKEN", "short")
    result = cli("mcp", instance, "--transport", "http")
    assert result.code == 2 and result.err.startswith("error: DOMARKX_MCP_TOKEN must be at least 16")
