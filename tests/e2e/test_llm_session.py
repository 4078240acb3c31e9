"""The model loop end to end: the real openai SDK against an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fake_openai import FAKE_KEY, FakeOpenAI, calls, error, fault, text

DOC = """\
---
title: llm session
---

```session-config
{"model": "openai:fake-model"}
```

## system

> You edit files in a sandbox.

## user

> Say hello.

## assistant

> Hello.
"""


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "session.md"
    path.write_text(DOC)
    return path


def files(cli, instance: str) -> list[str]:  # type: ignore[no-untyped-def]
    return cli("exec", instance, "--", "ls").out.split()


@pytest.mark.parametrize("stream", [True, False], ids=["streaming", "whole"])
def test_import_run_log_export_import_fork(
    cli, doc: Path, tmp_path: Path, openai_env: FakeOpenAI, stream: bool
) -> None:  # type: ignore[no-untyped-def]
    if not stream:
        doc.write_text(
            DOC.replace(
                '{"model": "openai:fake-model"}', '{"model": "openai:fake-model", "model_options": {"stream": false}}'
            )
        )
    openai_env.queue(
        calls(("write_file", {"path": "notes.txt", "content": "first\n"}), content="Writing."),
        text("Wrote notes.txt."),
    )
    snapshot = cli("import", str(doc)).out.strip()
    run = cli("run", snapshot, "-m", "write a note")
    assert run.code == 0, run
    assert "Wrote notes.txt." in run.out
    instance = run.out.strip().splitlines()[-1]

    # the model saw our tools and the conversation, and the key went only in the header
    request = openai_env.requests[0]
    names = {t["function"]["name"] for t in request.body["tools"]}
    assert {"run_command", "read_file", "write_file", "list_dir"} <= names
    assert request.body["messages"][-1] == {"role": "user", "content": "write a note"}
    assert FAKE_KEY not in json.dumps(request.body)
    second = openai_env.requests[1].body["messages"]
    assert second[-1]["role"] == "tool" and second[-2]["tool_calls"][0]["function"]["name"] == "write_file"

    log = json.loads(cli("log", instance, "--json").out)
    roles = [e["role"] for e in log]
    assert roles == ["system", "user", "assistant", "user", "assistant", "tool", "assistant"]
    before_call, after_call = 2, 4
    assert log[after_call]["workspace_version"] != log[before_call]["workspace_version"]

    exported = cli("export", instance).out
    assert "tool-call" in exported and "tool-result" in exported and "workspace_version" in exported
    assert FAKE_KEY not in exported
    again = tmp_path / "again.md"
    again.write_text(exported)
    reimported = cli("import", str(again)).out.strip()
    assert cli("export", reimported).out == exported

    # fork before and after the tool call: the workspace differs exactly by notes.txt
    before = cli("fork", instance, "--at", str(before_call), "-q").out.strip()
    after = cli("fork", instance, "--at", str(after_call), "-q").out.strip()
    assert files(cli, before) == []
    assert files(cli, after) == ["notes.txt"]
    assert cli("exec", after, "--", "cat notes.txt").out == "first\n"
    assert len(json.loads(cli("log", after, "--json").out)) == after_call + 1
    # the original is untouched
    assert files(cli, instance) == ["notes.txt"]


def test_usage_and_model_go_into_metadata(cli, doc: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    openai_env.queue(text("Hi!", usage=(12, 3)))
    instance = cli("run", str(doc), "-q", "-m", "hi").out.strip()
    exported = cli("export", instance).out
    assert '"model": "openai:fake-model"' in exported
    assert '"input_tokens": 12' in exported and '"output_tokens": 3' in exported


def test_failing_tool_becomes_a_result_the_model_sees(cli, doc: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    openai_env.queue(calls(("read_file", {"path": "../../etc/passwd"})), text("Cannot read it."))
    instance = cli("run", str(doc), "-q", "-m", "read passwd").out.strip()
    tool_message = openai_env.requests[1].body["messages"][-1]
    assert tool_message["role"] == "tool"
    assert "root:" not in tool_message["content"]
    log = json.loads(cli("log", instance, "--json").out)
    assert log[-2]["role"] == "tool" and log[-2]["summary"].startswith("error:")


@pytest.mark.parametrize(
    ("reply", "needle"),
    [
        (error(401, "bad key"), "OPENAI_API_KEY"),
        (fault("drop"), ""),
    ],
    ids=["401", "dropped"],
)
def test_model_failure_keeps_the_conversation(cli, doc: Path, openai_env: FakeOpenAI, reply, needle: str) -> None:  # type: ignore[no-untyped-def]
    openai_env.queue(reply)
    result = cli("run", str(doc), "-m", "hello?")
    assert result.code == 1
    error_lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and needle in result.err
    instance = result.out.strip().splitlines()[-1]
    log = json.loads(cli("log", instance, "--json").out)
    assert log[-1]["role"] == "user" and log[-1]["summary"] == "hello?"
    # the instance stays usable
    openai_env.queue(text("Back again."))
    assert cli("send", instance, "still there?", "-q").code == 0
    assert json.loads(cli("log", instance, "--json").out)[-1]["summary"] == "Back again."


def test_max_steps_stops_a_looping_model(cli, doc: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    openai_env.queue(*[calls(("run_command", {"command": "true"})) for _ in range(3)])
    result = cli("run", str(doc), "-m", "loop", "--max-steps", "2")
    assert result.code == 0
    assert "--max-steps 2" in result.err
    assert len(openai_env.requests) == 2


def test_no_model_is_a_usage_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "plain.md"
    doc.write_text("## user\n\n> hi\n")
    result = cli("run", str(doc), "-m", "hi")
    assert result.code == 2
    assert "no model" in result.err


def test_installed_script_streams_and_never_shows_a_traceback(doc: Path, openai_env: FakeOpenAI) -> None:
    boom = error(500, "boom", headers={"Retry-After": "0"})
    openai_env.queue(text("Streaming works."), *[boom] * 6)
    ok = subprocess.run(["domarkx", "run", str(doc), "-m", "hi"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "Streaming works." in ok.stdout
    instance = ok.stdout.strip().splitlines()[-1]
    failed = subprocess.run(["domarkx", "send", instance, "again"], capture_output=True, text=True, check=False)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    assert [line for line in failed.stderr.splitlines() if line.startswith("error:")]


def test_replay_answers_from_a_recorded_conversation(cli, doc: Path, tmp_path: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    openai_env.queue(calls(("write_file", {"path": "a.txt", "content": "A"})), text("Made a.txt."))
    instance = cli("run", str(doc), "-q", "-m", "make a file").out.strip()
    recorded = tmp_path / "recorded.md"
    assert cli("export", instance, "-o", str(recorded)).code == 0
    # branch before the model's turn and replay it offline, byte for byte the same outcome
    fork = cli("fork", instance, "--at", "2", "-q").out.strip()
    replayed = cli("send", fork, "make a file", "-q", "--model", f"replay:{recorded}")
    assert replayed.code == 0, replayed
    assert cli("exec", fork, "--", "cat a.txt").out == "A"
    original = json.loads(cli("log", instance, "--json").out)
    again = json.loads(cli("log", fork, "--json").out)
    assert [e["summary"] for e in again] == [e["summary"] for e in original]
    assert [e["workspace_version"] for e in again] == [e["workspace_version"] for e in original]
