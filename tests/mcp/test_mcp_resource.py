"""The ``mcp`` resource type: an MCP server's tools offered to the model, its calls recorded, its state not ours."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mcphelp import NOTES_SERVER, WAIT, manager, wait_for, work_dir

from domarkx.workspace.plugins import _sandbox
from domarkx.workspace.plugins.mcp import McpPlugin
from fake_openai import FakeOpenAI, calls, text

PLAIN_SERVER = Path(__file__).parent / "servers" / "plain_server.py"


def plain_doc(sandbox: str = "auto") -> str:
    """A document whose one resource is the standard-library server, started by the system's python3."""
    source = json.dumps(PLAIN_SERVER.read_text())
    config = f'  - type: mcp\n    command: /usr/bin/python3\n    args: ["-c", {source}]\n    sandbox: {sandbox}\n'
    return f"```workspace-config\nresources:\n{config}```\n\n## user\n\n> x\n"


def notes_doc() -> str:
    """A document with a shell and the notes server (the test's interpreter, so unconfined: a trusted choice)."""
    return f"""\
```workspace-config
resources:
  - type: local_shell
    name: sh
  - type: mcp
    name: notes
    command: {json.dumps(sys.executable)}
    args: [{json.dumps(str(NOTES_SERVER))}]
    sandbox: none
```

## user

> Keep notes for me.
"""


def run_doc(cli, tmp_path: Path, doc: str, *args: str) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / "doc.md"
    path.write_text(doc)
    result = cli("run", "--trust", str(path), *args)
    assert result.code == 0, result
    return str(result.out.strip().splitlines()[-1])


def test_the_models_call_reaches_the_server_and_fork_warns(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, domarkx_home: Path, openai_env: FakeOpenAI
) -> None:
    openai_env.queue(calls(("notes__add_note", {"text": "buy milk"})), text("Noted."))
    instance = run_doc(cli, tmp_path, notes_doc(), "-m", "note: buy milk", "--model", "openai:fake-model")

    offered = {t["function"]["name"]: t["function"] for t in openai_env.requests[0].body["tools"]}
    assert {"notes__add_note", "notes__list_notes", "notes__env_get", "notes__fail", "sh__run_command"} <= set(offered)
    assert offered["notes__add_note"]["parameters"]["required"] == ["text"]
    assert 'the server calls it "env.get"' in offered["notes__env_get"]["description"]
    answered = openai_env.requests[1].body["messages"]
    assert answered[-1] == {"role": "tool", "content": "1 note(s)", "tool_call_id": answered[-2]["tool_calls"][0]["id"]}
    assert (work_dir(domarkx_home, instance, 1) / "calls.log").read_text() == "add_note buy milk\n"

    log = json.loads(cli("log", instance, "--json").out)
    assert [e["role"] for e in log] == ["user", "user", "assistant", "tool", "assistant"]
    assert log[3]["summary"] == "1 note(s)"
    assert log[2]["workspace_version"] and log[2]["workspace_version"] == log[4]["workspace_version"]

    fork = cli("fork", instance, "--at", "0")
    assert fork.code == 0
    assert "warning: resource notes (mcp) cannot be restored by domarkx: what message 2 did there" in fork.err
    reset = cli("reset", instance, "--at", "0")
    assert reset.code == 0 and "warning: resource notes (mcp) cannot be restored" in reset.err


def test_server_failures_and_state_that_lives_in_the_server(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path, plain_doc("none"), "-q")
    with manager(domarkx_home) as instances:
        workspaces = instances.workspaces
        workspace = workspaces.open(instances.get(instance).workspace_id)
        first = workspaces.commit(workspace).id
        assert workspaces.call(workspace, "add_note", {"text": "one"}).text == "1 note(s)"
        assert workspaces.call(workspace, "list_notes", {}).text == "one"
        failed = workspaces.call(workspace, "fail", {"reason": "boom"})
        assert not failed.ok and failed.text == "error: failed: boom"
        # the server's state is not versioned: the version names the configuration only
        assert workspaces.commit(workspace).id == first
        workspaces.load(workspace, first)
        assert workspaces.call(workspace, "list_notes", {}).text == "one"
        workspaces.close(workspace)  # the server ends; its notes with it
        assert workspaces.call(workspace, "list_notes", {}).text == "(no notes)"
        workspaces.close(workspace)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ("    url: http://127.0.0.1:9/mcp\n", "error: invalid mcp options: give either command"),
        ("    colour: blue\n", "error: unknown mcp option 'colour'"),
        ("    timeout: -1\n", "error: mcp option 'timeout': input should be greater than 0"),
    ],
)
def test_bad_config_is_one_line_and_leaves_nothing(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, domarkx_home: Path, options: str, needle: str
) -> None:
    path = tmp_path / "doc.md"
    path.write_text(plain_doc().replace("    sandbox: auto\n", options))
    result = cli("run", "--trust", str(path))
    first, hint = result.err.splitlines()
    assert result.code == 2 and first.startswith(f"{path}:") and needle in first, result
    assert hint.startswith("  hint: mcp options: args, command")
    assert not list((domarkx_home / "resources").glob("mcp-*"))


def test_a_server_that_cannot_start_fails_the_run_in_one_line(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "doc.md"
    path.write_text(plain_doc("none").replace(json.dumps(PLAIN_SERVER.read_text()), json.dumps("raise SystemExit(3)")))
    result = cli("run", "--trust", str(path))
    assert result.code == 1 and "cannot start a session with the MCP server" in result.err, result
    assert "Traceback" not in result.err
    assert not list((domarkx_home / "resources").glob("mcp-*"))
    with manager(domarkx_home) as instances:
        assert instances.store.instances.listing() == [] and instances.workspaces.abandoned() == ([], [])


def test_a_streamable_http_server_by_url(tmp_path: Path, domarkx_home: Path, cli) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    with serving_notes(port, tmp_path):
        url = f"http://127.0.0.1:{port}/mcp"
        doc = f"```workspace-config\nresources:\n  - type: mcp\n    url: {url}\n```\n\n## user\n\n> x\n"
        instance = run_doc(cli, tmp_path, doc, "-q")
        with manager(domarkx_home) as instances:
            workspace = instances.workspaces.open(instances.get(instance).workspace_id)
            assert instances.workspaces.call(workspace, "add_note", {"text": "remote"}).text == "1 note(s)"
            instances.workspaces.close(workspace)
    assert (tmp_path / "calls.log").read_text() == "add_note remote\n"


def test_a_command_runs_confined(cli, tmp_path: Path, domarkx_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    if not _sandbox.bwrap_works():
        assert not os.environ.get("CI"), "bubblewrap must work in CI"
        pytest.skip("bubblewrap cannot run here")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    instance = run_doc(cli, tmp_path, plain_doc(), "-q")
    with socket.socket() as listener, manager(domarkx_home) as instances:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        workspace = instances.workspaces.open(instances.get(instance).workspace_id)
        reach = {"path": str(secret), "port": listener.getsockname()[1]}
        outcome = instances.workspaces.call(workspace, "probe", reach)
        instances.workspaces.close(workspace)
    found = json.loads(outcome.text)
    assert found["read"] == "FileNotFoundError" and found["net"] != "yes"
    assert found["home"] == "/tmp" and found["cwd"] == "/workspace" and found["write"] == "yes"
    assert not any(k.startswith(("OPENAI", "DOMARKX")) for k in found["env"]), found["env"]
    assert (work_dir(domarkx_home, instance) / "made.txt").read_text() == "made inside\n"


def test_an_untrusted_document_starts_no_server(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "doc.md"
    path.write_text(plain_doc())
    result = cli("run", str(path))
    assert result.code == 2 and "doc.md:3:1: error: mcp: starts the program" in result.err, result
    assert "--trust" in result.err and "Traceback" not in result.err
    assert not list((domarkx_home / "resources").glob("mcp-*"))
    assert cli("instances", "ls", "-q").out == ""


def test_a_document_must_be_trusted_to_start_a_program_or_reach_a_server() -> None:
    assert McpPlugin.powers({"command": "npx", "args": ["-y", "srv; rm -rf ~"]}) == [
        "starts the program `npx -y 'srv; rm -rf ~'`"
    ]
    assert McpPlugin.powers({"command": "srv", "sandbox": "none"}) == ["starts the program `srv` unconfined"]
    assert McpPlugin.powers({"url": "https://example.com/mcp"}) == [
        "connects to the MCP server at https://example.com/mcp"
    ]
    assert McpPlugin.restorable is False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class serving_notes:
    """The notes server over streamable HTTP, working in ``directory``."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port, self.directory = port, directory

    def __enter__(self) -> subprocess.Popen[bytes]:
        with (self.directory / "notes-server.log").open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(NOTES_SERVER), "--http", str(self.port)],
                cwd=self.directory,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_for(self._listening, "the notes server to listen")
        return self.process

    def _listening(self) -> bool:
        assert self.process.poll() is None, (self.directory / "notes-server.log").read_text()
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(WAIT)
