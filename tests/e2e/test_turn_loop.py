"""The model loop as people use it every day: through the real ``domarkx`` entry point, the real
openai SDK and an OpenAI-compatible server on 127.0.0.1 (tests/fake_openai.py).

What an instance remembers, what a failed or stopped turn keeps and how it is answered later,
what a turn shows while it runs, and asking before tool calls.
"""

from __future__ import annotations

import io
import json
import re
import signal
import socket
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, calls, error, fault, text
from watched import Watched

DOC = """\
```session-config
{session_config}
```

## system

> You work in a shell sandbox.

## user

> Say hello.

## assistant

> Hello.
"""


def document(tmp_path: Path, **session_config: object) -> Path:
    path = tmp_path / "session.md"
    path.write_text(DOC.format(session_config=json.dumps(session_config)), encoding="utf-8")
    return path


def log(cli, instance: str) -> list[dict]:  # type: ignore[no-untyped-def]
    result = cli("log", instance, "--json")
    assert result.code == 0, result
    return json.loads(result.out)  # type: ignore[no-any-return]


def summaries(cli, instance: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["summary"] for e in log(cli, instance)]


def new_instance(cli, doc: Path, *args: str) -> str:  # type: ignore[no-untyped-def]
    result = cli("run", str(doc), "-q", *args)
    assert result.code == 0, result
    return result.out.strip().splitlines()[-1]


def dead_url() -> str:
    """An address nothing listens on (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


# -- an instance remembers its model ---------------------------------------------------------


def test_send_uses_the_model_run_was_given_and_model_still_overrides(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI
) -> None:
    doc = document(tmp_path)  # no model in the document, none in the environment
    openai_env.queue(text("one"), text("two"), text("three"), text("four"), text("five"))
    instance = new_instance(cli, doc, "--name", "t", "-m", "hi", "--model", "openai:first")
    assert cli("send", "t", "again", "-q").code == 0
    assert cli("send", "t", "other", "-q", "--model", "openai:second").code == 0
    assert cli("send", "t", "and now?", "-q").code == 0  # the last --model is the one remembered
    fork = cli("fork", "t", "--at", "4", "-q").out.strip()
    assert cli("send", fork, "in the fork", "-q").code == 0  # a fork remembers what its parent did
    assert [r.body["model"] for r in openai_env.requests] == ["first", "first", "second", "second", "second"]
    assert log(cli, instance)[-1]["summary"] == "four"
    assert cli("send", "t", "x", "--model", "nonsense:x").code == 2  # a wrong model is not remembered
    openai_env.queue(text("six"))
    assert cli("send", "t", "still second?", "-q").code == 0
    assert openai_env.requests[-1].body["model"] == "second"


def test_run_without_a_message_remembers_the_model_for_send(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI
) -> None:
    instance = new_instance(cli, document(tmp_path), "--model", "openai:kept")
    assert openai_env.requests == []  # nothing was asked of the model
    openai_env.queue(text("yes"))
    assert cli("send", instance, "there?", "-q").code == 0
    assert openai_env.requests[0].body["model"] == "kept"


# -- a failed turn keeps the message, and `continue` (or the same text) answers it -------------

FAILURES = ["unreachable", "401", "5xx after retries", "ctrl-c before any reply"]


def fail_a_turn(cli, tmp_path: Path, server: FakeOpenAI, kind: str, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[no-untyped-def]
    """An instance whose last turn failed as ``kind`` says; the server is left answering normally."""
    options = {"max_retries": 0} if kind == "unreachable" else {"max_retries": 2}
    doc = document(tmp_path, model="openai:fake", model_options=options)
    instance = new_instance(cli, doc, "--name", "t")
    if kind == "ctrl-c before any reply":
        server.queue(fault("hang"))
        with Watched(["send", instance, "hello?"]) as proc:
            proc.wait_until(lambda: bool(server.requests), "the model was called")
            proc.signal(signal.SIGINT)
            assert proc.finish() == 130
        return instance
    if kind == "unreachable":
        monkeypatch.setenv("OPENAI_BASE_URL", dead_url())
    elif kind == "401":
        server.queue(error(401, "bad key"))
    else:
        server.queue(*[error(503, "overloaded", headers={"Retry-After": "0"})] * 3)
    failed = cli("send", instance, "hello?")
    assert failed.code == 1
    assert len([line for line in failed.err.splitlines() if line.startswith("error:")]) == 1
    assert "Traceback" not in failed.err
    assert "your message is kept, not answered yet: `domarkx continue t` answers it" in failed.err
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    return instance


@pytest.mark.parametrize("kind", FAILURES)
@pytest.mark.parametrize("how", ["continue", "send the same text"])
def test_a_failed_turn_keeps_the_message_until_it_is_answered(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, kind: str, how: str
) -> None:
    instance = fail_a_turn(cli, tmp_path, openai_env, kind, monkeypatch)
    assert summaries(cli, instance)[-2:] == ["Hello.", "hello?"]
    table = cli("log", instance)
    assert "message 3 is not answered yet: `domarkx continue" in table.err

    openai_env.queue(text("Hi there."))
    answered = cli("continue", instance) if how == "continue" else cli("send", instance, "hello?")
    assert answered.code == 0, answered
    assert "Hi there." in answered.out
    assert summaries(cli, instance)[-3:] == ["Hello.", "hello?", "Hi there."]  # no second copy
    sent = openai_env.requests[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["Say hello.", "hello?"]
    assert "not answered" not in cli("log", instance).err


def test_continue_with_nothing_to_answer_says_so(cli, tmp_path: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    instance = new_instance(cli, document(tmp_path, model="openai:fake"))
    result = cli("continue", instance)
    assert result.code == 2
    assert result.err.startswith("error: nothing to answer: the last message is the assistant's")
    assert openai_env.requests == []


def test_a_different_text_after_a_failure_is_a_new_message(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI
) -> None:
    instance = new_instance(cli, document(tmp_path, model="openai:fake"))
    openai_env.queue(error(401, "no"), text("Both seen."))
    assert cli("send", instance, "first", "-q").code == 1
    assert cli("send", instance, "second", "-q").code == 0
    assert summaries(cli, instance)[-3:] == ["first", "second", "Both seen."]


# -- a document that ends with a question ---------------------------------------------------


def test_run_with_a_model_answers_a_document_that_ends_with_a_user_message(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI
) -> None:
    doc = tmp_path / "question.md"
    doc.write_text("## user\n\n> What is 2 + 2?\n", encoding="utf-8")
    offline = cli("run", str(doc))
    assert offline.code == 0 and openai_env.requests == []  # no model asked for: none called
    assert "not answered yet" in offline.err and "domarkx continue" in offline.err
    openai_env.queue(text("4."), text("Still 4."))
    answered = cli("run", str(doc), "--model", "openai:fake")
    assert answered.code == 0, answered
    assert "4." in answered.out
    instance = answered.out.strip().splitlines()[-1]
    assert summaries(cli, instance) == ["What is 2 + 2?", "4."]
    later = offline.out.strip().splitlines()[-1]
    assert cli("continue", later, "--model", "openai:fake", "-q").code == 0
    assert summaries(cli, later) == ["What is 2 + 2?", "Still 4."]


def test_the_shipped_chat_template_is_answered_by_run(cli, tmp_path: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    talk = tmp_path / "talk.md"
    assert cli("new", "chat", "-o", str(talk)).code == 0
    openai_env.queue(text("I can help with many things."))
    result = cli("run", str(talk), "--model", "openai:fake")
    assert result.code == 0, result
    assert "I can help with many things." in result.out
    assert openai_env.requests[0].body["messages"][-1] == {"role": "user", "content": "What can you help me with?"}


# -- what a turn shows while it runs ------------------------------------------------------------


def test_texts_of_two_steps_do_not_run_together(cli, tmp_path: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    instance = new_instance(cli, document(tmp_path, model="openai:fake"))
    openai_env.queue(
        calls(("run_command", {"command": "true"}), content="Checking."),
        calls(("run_command", {"command": "true"}), content="Checking again."),
        text("All good."),
    )
    result = cli("send", instance, "check")
    assert result.code == 0
    assert result.out == "Checking.\nChecking again.\nAll good.\n"


def test_a_call_is_shown_before_it_runs_and_its_output_while_it_runs(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI, domarkx_home: Path
) -> None:
    instance = new_instance(cli, document(tmp_path, model="openai:fake"))
    # The command waits for a file the test creates only after it has seen the first line:
    # so that line was shown while the command was still running.
    command = "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second"
    openai_env.queue(calls(("run_command", {"command": command})), text("Done."))
    with Watched(["send", instance, "go"]) as proc:
        proc.wait_for("  │ first")
        assert f"→ run_command(command={json.dumps(command)})" in proc.err.split("│ first")[0]
        assert "│ second" not in proc.err
        (work,) = (domarkx_home / "resources").glob("local_shell-*/work")
        (work / "go").touch()
        assert proc.finish() == 0, proc.err
    assert "  │ second" in proc.err
    assert proc.out == "Done.\n"


def test_a_result_shows_several_lines_and_all_of_them_with_verbose(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI
) -> None:
    instance = new_instance(cli, document(tmp_path, model="openai:fake"))
    lines = "".join(f"line {n}\n" for n in range(1, 11))
    openai_env.queue(
        calls(("write_file", {"path": "ten.txt", "content": lines})),
        calls(("read_file", {"path": "ten.txt"})),
        text("Read it."),
        calls(("read_file", {"path": "ten.txt"})),
        text("Read it again."),
    )
    short = cli("send", instance, "read the file")
    assert "  ✓ line 1\n    line 2\n" in short.err
    assert "    line 6\n" in short.err and "    line 7\n" not in short.err
    assert "… 4 more lines (-v shows all)" in short.err
    full = cli("send", instance, "once more", "-v")
    assert "    line 10\n" in full.err and "more lines" not in full.err


def test_model_retries_show_progress(cli, tmp_path: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    instance = new_instance(cli, document(tmp_path, model="openai:fake"))
    openai_env.queue(error(429, "slow down", headers={"Retry-After": "0"}), text("Finally."))
    result = cli("send", instance, "hi")
    assert result.code == 0
    assert re.search(r"^· retrying in [0-9.]+ s \(429\)…$", result.err, re.MULTILINE), result.err
    openai_env.queue(error(500, "x", headers={"Retry-After": "0"}), text("ok"))
    assert "retrying" not in cli("send", instance, "hush", "-q").err


# -- asking before each call ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "ran", "asked"),
    [("n\n", [], 2), ("y\nn\n", ["a.txt"], 2), ("a\n", ["a.txt", "b.txt"], 1), ("", [], 1)],
    ids=["no", "yes-then-no", "always", "end-of-input"],
)
def test_approve_asks_before_each_call_and_a_refusal_reaches_the_model(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, answers: str, ran, asked: int
) -> None:
    instance = new_instance(cli, document(tmp_path, model="openai:fake"))
    openai_env.queue(
        calls(("write_file", {"path": "a.txt", "content": "a"}), ("write_file", {"path": "b.txt", "content": "b"})),
        text("Noted."),
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(answers))
    result = cli("send", instance, "write two files", "--approve")
    assert result.code == 0, result
    assert result.err.count("run it? [Y]es, [n]o, [a]lways") == asked
    assert sorted(cli("exec", instance, "--", "ls").out.split()) == ran
    results = [m for m in openai_env.requests[1].body["messages"] if m["role"] == "tool"]
    declined = [m["content"] for m in results if "declined" in m["content"]]
    assert len(declined) == 2 - len(ran)


def test_approve_in_session_config_asks_and_is_remembered_off(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = new_instance(cli, document(tmp_path, model="openai:fake", approve=True))
    openai_env.queue(calls(("run_command", {"command": "touch x"})), text("Refused, fine."))
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert "run it?" in cli("send", instance, "touch x").err
    assert cli("exec", instance, "--", "ls").out == ""
    openai_env.queue(calls(("run_command", {"command": "touch x"})), text("Done."))
    assert "run it?" not in cli("send", instance, "touch x", "--no-approve").err
    openai_env.queue(calls(("run_command", {"command": "touch y"})), text("Done."))
    assert "run it?" not in cli("send", instance, "touch y").err  # remembered
    assert cli("exec", instance, "--", "ls").out.split() == ["x", "y"]


# -- Ctrl-C keeps what happened -------------------------------------------------------------------


def test_ctrl_c_during_a_tool_call_records_the_call_its_output_and_its_change(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI
) -> None:
    instance = new_instance(cli, document(tmp_path, model="openai:fake"))
    openai_env.queue(
        calls(
            ("run_command", {"command": "echo made > made.txt; echo started; sleep 30"}),
            ("write_file", {"path": "never.txt", "content": "x"}),
            content="Starting the long job.",
        )
    )
    with Watched(["send", instance, "start the job"]) as proc:
        proc.wait_for("  │ started")
        proc.signal(signal.SIGINT)
        assert proc.finish() == 130
    assert proc.out.startswith("Starting the long job.")
    entries = log(cli, instance)
    assert [e["role"] for e in entries[-4:]] == ["user", "assistant", "tool", "tool"]
    assistant, running, skipped = entries[-3:]
    assert assistant["summary"].startswith("Starting the long job. → run_command(")
    assert running["summary"].startswith("error: started [interrupted")
    assert "not run: the turn was interrupted" in skipped["summary"]
    # the change the interrupted command made is in the version the message links to
    fork = cli("fork", instance, "--at", str(assistant["index"]), "-q").out.strip()
    assert cli("exec", fork, "--", "ls").out.split() == ["made.txt"]
    exported = cli("export", instance).out
    assert "[interrupted: the user stopped this call]" in exported
    # the model hears about it when the conversation goes on
    openai_env.queue(text("I see it was stopped."))
    assert cli("continue", instance, "-q").code == 0
    tool_messages = [m for m in openai_env.requests[-1].body["messages"] if m["role"] == "tool"]
    assert "interrupted" in tool_messages[0]["content"] and "not run" in tool_messages[1]["content"]


def test_ctrl_c_while_the_reply_streams_keeps_the_text_that_was_shown(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI
) -> None:
    instance = new_instance(cli, document(tmp_path, model="openai:fake"))
    openai_env.queue(fault("stall", content="one two three four five six seven eight"))
    with Watched(["send", instance, "count"]) as proc:
        proc.wait_for("one two", stream="out")
        proc.signal(signal.SIGINT)
        assert proc.finish() == 130
    shown = proc.out.strip()
    entries = log(cli, instance)
    assert entries[-1]["role"] == "assistant" and entries[-1]["workspace_version"]
    assert entries[-1]["summary"] == shown
    assert '"interrupted": true' in cli("export", instance).out


def test_sigterm_stops_a_turn_like_ctrl_c(cli, tmp_path: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    instance = new_instance(cli, document(tmp_path, model="openai:fake"))
    openai_env.queue(calls(("run_command", {"command": "echo started; sleep 30"})))
    with Watched(["send", instance, "go"]) as proc:
        proc.wait_for("  │ started")
        proc.signal(signal.SIGTERM)
        proc.finish()
    assert log(cli, instance)[-1]["summary"].startswith("error: started [interrupted")


# -- output for scripts -----------------------------------------------------------------------------


def test_json_and_quiet_output(cli, tmp_path: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    doc = document(tmp_path, model="openai:fake")
    openai_env.queue(calls(("write_file", {"path": "a.txt", "content": "A"}), content="Writing."), text("Done."))
    run = cli("run", str(doc), "-m", "write", "--json", "--name", "j")
    assert run.code == 0, run
    data = json.loads(run.out)
    assert data["name"] == "j" and data["snapshot"].startswith("sha256:") and data["pending"] is False
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert [m["index"] for m in data["messages"]] == [3, 4, 5, 6]
    assert data["messages"][1]["tool_calls"][0]["name"] == "write_file"
    assert data["messages"][2]["ok"] is True and data["messages"][3]["content"] == "Done."

    openai_env.queue(text("Hi."))
    sent = json.loads(cli("send", "j", "hi", "--json").out)
    assert sent["instance"] == data["instance"] and [m["content"] for m in sent["messages"]] == ["hi", "Hi."]

    fork = json.loads(cli("fork", "j", "--at", "4", "--json").out)
    assert fork["parent"] == data["instance"] and fork["at"] == 4 and fork["head_version"]
    quiet_fork = cli("fork", "j", "--at", "4", "-q")
    assert re.fullmatch(r"[0-9a-f]{64}\n", quiet_fork.out) and quiet_fork.err == ""

    openai_env.queue(text("Quiet."))
    quiet = cli("send", "j", "shh", "-q")
    assert quiet.out == "" and quiet.err == ""
    openai_env.queue(text("Quiet run."))
    quiet_run = cli("run", str(doc), "-q", "-m", "x")
    assert re.fullmatch(r"[0-9a-f]{64}\n", quiet_run.out) and quiet_run.err == ""


def test_run_ends_with_what_to_do_next_on_stderr(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", str(document(tmp_path)), "--name", "demo")
    assert result.code == 0
    assert result.out.strip().splitlines()[-1] == result.out.strip()[-64:]  # the id, last, alone on stdout
    for command in ("domarkx send demo", "domarkx log demo", "domarkx fork demo --at N", "domarkx export demo"):
        assert command in result.err
    assert "domarkx" not in result.out
