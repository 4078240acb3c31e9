"""A client that goes away mid-call, and a domarkx killed mid-call: the call is recorded as interrupted, nothing lost.

The command in flight waits for a file the test creates only once the server
has said it saw the client go, so no test depends on timing.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import anyio
from mcphelp import DOMARKX, WAIT, call, stdio, tree, wait_for, wait_for_line, work_dir

WAITING = "echo start > early.txt; while [ ! -e go ]; do sleep 0.02; done; echo done > late.txt"


def new_instance(cli, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text("## user\n\n> work\n")
    return str(cli("run", str(doc), "-q").out.strip())


def last_result(cli, instance: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The last tool message, as the export writes its metadata and result."""
    exported = cli("export", instance).out
    metadata = exported.rsplit("```json msg-metadata\n", 1)[1].split("```", 1)[0]
    result = exported.rsplit("tool-result", 1)[1]
    return {"metadata": json.loads(metadata), "result": result}


def test_a_client_that_cancels_a_call_leaves_it_recorded_as_interrupted(
    cli, tmp_path: Path, domarkx_home: Path
) -> None:  # type: ignore[no-untyped-def]
    instance = new_instance(cli, tmp_path)
    work = work_dir(domarkx_home, instance)
    errlog = tmp_path / "server.log"

    async def drive() -> None:
        with errlog.open("w") as sink:
            async with stdio(instance, domarkx_home, sink) as client:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(lambda: call(client, "run_command", command=WAITING))
                    await anyio.to_thread.run_sync(wait_for, (work / "early.txt").exists, "the command to start")
                    tasks.cancel_scope.cancel()  # the agent's user pressed Esc
                await anyio.to_thread.run_sync(wait_for_line, errlog, "stopped waiting for run_command")
                (work / "go").touch()
            # leaving the client ended the server once the call was recorded

    anyio.run(drive)
    recorded = last_result(cli, instance)
    assert recorded["metadata"] == {
        "interrupted": "the client went away before it received this result",
        "name": "run_command",
    }
    assert tree(work_dir(domarkx_home, instance)) == {"early.txt": "start\n", "go": "", "late.txt": "done\n"}
    log = json.loads(cli("log", instance, "--json").out)
    assert (
        log[-2]["workspace_version"] == json.loads(cli("instances", "inspect", instance, "--json").out)["head_version"]
    )


def test_a_client_that_disconnects_mid_call_leaves_it_recorded(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    instance = new_instance(cli, tmp_path)
    work = work_dir(domarkx_home, instance)
    errlog = tmp_path / "server.log"
    server = raw_server(instance, domarkx_home, errlog)
    assert server.stdin is not None
    server.stdin.close()  # the client's process is gone: EOF on the server's stdin
    wait_for_line(errlog, "stopped waiting for run_command")
    (work / "go").touch()
    assert server.wait(WAIT) == 0
    assert last_result(cli, instance)["metadata"]["interrupted"]  # type: ignore[index]
    assert set(tree(work_dir(domarkx_home, instance))) == {"early.txt", "go", "late.txt"}


def test_a_domarkx_killed_mid_call_is_recovered_by_the_next_session(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    instance = new_instance(cli, tmp_path)
    server = raw_server(instance, domarkx_home, tmp_path / "server.log")
    server.send_signal(signal.SIGKILL)
    server.wait(WAIT)
    assert server.stdin is not None
    server.stdin.close()
    assert json.loads(cli("log", instance, "--json").out)[-1]["summary"].startswith("→ run_command")  # written ahead

    async def next_session() -> None:
        with (tmp_path / "again.log").open("w") as sink:
            async with stdio(instance, domarkx_home, sink) as client:
                await call(client, "log")

    anyio.run(next_session)
    log = json.loads(cli("log", instance, "--json").out)
    assert [e["role"] for e in log] == ["user", "assistant", "tool", "assistant", "tool"]
    assert log[2]["summary"].startswith("error: interrupted: domarkx stopped before this call finished")
    # what the killed call did before it died is in the version its message links to
    assert log[1]["workspace_version"] != log[0]["workspace_version"] and log[1]["workspace_version"]
    fork = cli("fork", instance, "--at", "2", "-q").out.strip()
    assert "early.txt" in tree(work_dir(domarkx_home, fork))


def raw_server(instance: str, home: Path, errlog: Path) -> subprocess.Popen[bytes]:
    """``domarkx mcp`` spoken to line by line (legacy handshake), left with a call in flight."""
    with errlog.open("w") as sink:
        server = subprocess.Popen(
            [DOMARKX, "mcp", instance],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env={"DOMARKX_HOME": str(home), "PATH": "/usr/bin:/bin"},
        )
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_command", "arguments": {"command": WAITING}}},
    ]  # fmt: skip
    assert server.stdin is not None
    server.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    server.stdin.flush()
    work = work_dir(home, instance)
    wait_for(lambda: (work / "early.txt").exists() or server.poll() is not None, "the command to start")
    assert server.poll() is None, errlog.read_text()
    return server
