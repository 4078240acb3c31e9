"""Dead peers: a model server or a Jupyter kernel that fails mid-turn, through the CLI.

Each model-server failure comes after a turn has already made a tool call, so
there is something to lose: the command must end with exit 1 and one ``error:``
line (no traceback), the user message and the finished step must be in
``domarkx log``, the workspace must hold what the step wrote, ``domarkx doctor``
must find the store intact, and the next ``send`` must work — with the model
seeing the conversation so far. A kernel that dies mid-cell is a tool error the
model reads; the turn goes on, and the next cell runs in a new kernel that
replayed the history.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fake_openai import FAKE_KEY, FakeOpenAI, Reply, calls, error, fault, text
from fakehttp import Handler

RETRIES = 2
TIMEOUT = 1.0
DOC = f"""\
```session-config
{{"model": "openai:fake-model", "model_options": {{"timeout": {TIMEOUT}, "max_retries": {RETRIES}}}}}
```

## user

> Keep notes.
"""
NOW = {"Retry-After": "0"}
"""Lets a test retry at once instead of backing off for seconds."""


class DyingServer(FakeOpenAI):
    """Answers what is queued, then goes away for good at the next request, without answering it."""

    def handle(self, handler: Handler) -> None:
        with self._lock:
            answering = bool(self.replies)
        if answering:
            super().handle(handler)
            return
        handler.close_connection = True
        self.stop()  # from the handler's own thread: the listening socket is closed before we return


@dataclass(frozen=True)
class Peer:
    """How the server fails after the first step of a turn, and words the error must hold."""

    replies: list[Reply]
    says: str
    server: type[FakeOpenAI] = FakeOpenAI


PEERS = {
    "server gone": Peer([], "cannot reach the model server", DyingServer),
    "connection dropped": Peer([fault("drop")] * (RETRIES + 1), "cannot reach the model server"),
    "429 every time": Peer([error(429, "slow down", headers=NOW)] * (RETRIES + 1), "rate-limiting"),
    "500 every time": Peer([error(500, "kaput", headers=NOW)] * (RETRIES + 1), f"gave up after {RETRIES + 1} attempts"),
    "half a stream, then closed": Peer([fault("cut")], "broke off"),
    "half a stream, then ended": Peer([fault("truncate")], "ended before the reply was complete"),
    "error event mid-stream": Peer([fault("error_event")], "reported an error"),
    "no answer within the time-out": Peer([fault("hang")], f"did not answer within {TIMEOUT:g}s"),
    "stalls mid-stream": Peer([fault("stall")], "stopped sending the reply"),
}


def log(cli, instance: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    entries: list[dict[str, object]] = json.loads(cli("log", instance, "--json").out)
    return entries


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "notes.md"
    path.write_text(DOC)
    return path


@pytest.fixture
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """The scenario's server, with the environment pointing at it (what ``openai_env`` does for the plain one)."""
    peer: Peer = request.param
    with peer.server() as running:
        monkeypatch.setenv("OPENAI_BASE_URL", running.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
        yield running


@pytest.mark.parametrize("server", list(PEERS.values()), ids=list(PEERS), indirect=True)
def test_a_failing_model_server_leaves_a_usable_instance_and_an_intact_store(
    cli, doc: Path, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    peer: Peer = request.node.callspec.params["server"]
    instance = cli("run", str(doc), "-q").out.strip()
    server.queue(calls(("write_file", {"path": "notes.txt", "content": "kept\n"}), content="Writing."), *peer.replies)

    failed = cli("send", instance, "write a note")

    assert failed.code == 1, failed
    errors = [line for line in failed.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, failed.err
    assert peer.says in errors[0]
    assert "Traceback" not in failed.err
    entries = log(cli, instance)
    assert [e["role"] for e in entries[-3:]] == ["user", "assistant", "tool"]
    assert entries[-3]["summary"] == "write a note"
    assert cli("exec", instance, "--", "cat notes.txt").out == "kept\n"
    doctor = cli("doctor")
    assert doctor.code == 0 and "store is intact" in doctor.out, doctor

    if server.stopping.is_set():  # gone for good: the user points domarkx at another server
        server = FakeOpenAI().start()
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    try:
        server.queue(text("Back again."))
        again = cli("send", instance, "still there?", "-q")
        assert again.code == 0, again
        seen = server.requests[-1].body["messages"]
    finally:
        server.stop()
    assert seen[-1] == {"role": "user", "content": "still there?"}
    assert [m["role"] for m in seen[-4:-1]] == ["user", "assistant", "tool"]  # the kept step, in order
    assert log(cli, instance)[-1]["summary"] == "Back again."


def test_429_and_500_are_retried_and_the_turn_succeeds(cli, doc: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    openai_env.queue(error(429, headers=NOW), error(500, headers=NOW), text("Made it."))
    result = cli("run", str(doc), "-m", "hello")
    assert result.code == 0, result
    assert "Made it." in result.out
    assert len(openai_env.requests) == 3


KERNEL_DOC = """\
```session-config
{"model": "openai:fake-model"}
```

```yaml workspace-config
resources:
  - type: python
```

## user

> Compute.
"""


@pytest.mark.parametrize("death", ["import os; os._exit(1)", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
def test_a_kernel_dying_mid_cell_is_a_tool_error_and_the_next_cell_runs(
    cli, tmp_path: Path, openai_env: FakeOpenAI, death: str
) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "kernel.md"
    doc.write_text(KERNEL_DOC)
    openai_env.queue(
        calls(("execute_python", {"code": "x = 41"})),
        calls(("execute_python", {"code": f"print('dying'); {death}"})),
        calls(("execute_python", {"code": "print(x + 1)"})),
        text("The kernel came back."),
    )

    run = cli("run", str(doc), "-m", "go")

    assert run.code == 0, run
    instance = run.out.strip().splitlines()[-1]
    tools = [e for e in log(cli, instance) if e["role"] == "tool"]
    assert len(tools) == 3
    died = str(tools[1]["summary"])
    assert died.startswith("error:") and "kernel died" in died
    assert "42" in str(tools[2]["summary"])  # a new kernel, with x = 41 replayed
    assert openai_env.requests[2].body["messages"][-1]["content"].startswith("error:")  # the model was told

    openai_env.queue(calls(("execute_python", {"code": "print(x * 2)"})), text("Still here."))
    assert cli("send", instance, "again", "-q").code == 0
    assert "82" in str([e for e in log(cli, instance) if e["role"] == "tool"][-1]["summary"])
    assert cli("doctor").code == 0
