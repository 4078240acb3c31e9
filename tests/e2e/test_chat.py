"""``domarkx chat`` through the installed script: on a pseudo-terminal (line editing, history,
commands) and with its input from a pipe."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, error, fault, text
from watched import OnTerminal, Watched

ANSWERED = '```session-config\n{{"model": "{model}"}}\n```\n\n## user\n\n> hi\n\n## assistant\n\n> Hello.\n'


def instance_of(cli, tmp_path: Path, model: str = "replay:echo", doc: str = ANSWERED) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / "doc.md"
    path.write_text(doc.format(model=model), encoding="utf-8")
    result = cli("run", str(path), "-q", "--name", "chat1")
    assert result.code == 0, result
    return result.out.strip()  # type: ignore[no-any-return]


def summaries(cli, instance: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["summary"] for e in json.loads(cli("log", instance, "--json").out)]


def chat(args: list[str], given: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["domarkx", "chat", *args], input=given, capture_output=True, text=True, timeout=60, check=False
    )


# -- from a pipe ------------------------------------------------------------------------------------


def test_chat_streams_replies_and_keeps_the_conversation(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = instance_of(cli, tmp_path)
    done = chat([instance], 'first question\n\n"""\nline one\nline two\n"""\n//slash\n/exit\nnever sent\n')
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("You said: first question\nYou said: line one\nline two\nYou said: /slash\n")  # replies only
    assert summaries(cli, instance)[2:] == [
        "first question",
        "You said: first question",
        "line one line two",
        "You said: line one line two",
        "/slash",
        "You said: /slash",
    ]


def test_chat_answers_a_pending_message_first(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = instance_of(cli, tmp_path, doc='```session-config\n{{"model": "{model}"}}\n```\n\n## user\n\n> hi\n')
    done = chat([instance], "")
    assert done.returncode == 0
    assert "not answered yet: answering it first" in done.stderr
    assert summaries(cli, instance) == ["hi", "You said: hi"]


@pytest.mark.parametrize(
    ("model", "code", "words"),
    [
        ("openai:fake", 1, "cannot reach the model server at http://127.0.0.1:"),
        ("nonsense:x", 2, "unknown provider"),
        ("replay:missing-script.yaml", 2, "replay script not found"),
    ],
    ids=["dead-server", "unknown-provider", "missing-script"],
)
def test_the_model_is_checked_before_the_prompt_opens(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str, code: int, words: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{probe.getsockname()[1]}/v1")
    instance = instance_of(cli, tmp_path)
    done = chat([instance, "--model", model], "hello\n")
    assert done.returncode == code
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], done.stderr
    assert "chatting with" not in done.stderr and "Traceback" not in done.stderr  # stopped before the prompt
    assert summaries(cli, instance) == ["hi", "Hello."]


def test_chat_reports_a_failed_turn_and_goes_on(cli, tmp_path: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    instance = instance_of(cli, tmp_path, model="openai:fake")
    openai_env.queue(error(401, "bad key"), text("Now it works."))
    done = chat([instance], "hello\nhello\n")
    assert done.returncode == 0
    assert "error: the model server at" in done.stderr and "domarkx continue c" in done.stderr
    assert "answering your earlier message" in done.stderr  # the same text again: no second copy
    assert summaries(cli, instance)[2:] == ["hello", "Now it works."]


def test_ctrl_c_stops_the_turn_not_the_chat(cli, tmp_path: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    instance = instance_of(cli, tmp_path, model="openai:fake")
    openai_env.queue(fault("hang"), text("after the interrupt"))
    with Watched(["chat", instance], more_input=True) as proc:
        proc.type(b"this one hangs\n")
        proc.wait_until(lambda: bool(openai_env.requests), "the model was called")
        proc.signal(signal.SIGINT)
        proc.wait_for("turn stopped")
        proc.type(b"and this one works\n/exit\n", close=True)
        assert proc.finish() == 0, proc.err
    assert "after the interrupt" in proc.out
    assert summaries(cli, instance)[-3:] == ["this one hangs", "and this one works", "after the interrupt"]


def test_text_that_is_not_utf8_is_one_error_and_the_chat_goes_on(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = instance_of(cli, tmp_path)
    done = subprocess.run(
        ["domarkx", "chat", instance], input=b"caf\xe9\nfine\n", capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0
    errors = [line for line in done.stderr.decode().splitlines() if line.startswith("error:")]
    assert errors == ["error: the message is not UTF-8 text (byte 0xe9 at character 4)"]
    assert summaries(cli, instance)[2:] == ["fine", "You said: fine"]


# -- on a terminal --------------------------------------------------------------------------------

UP, CTRL_A, CTRL_D = "\x1b[A", "\x01", "\x04"


def test_line_editing_history_and_commands_on_a_terminal(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = instance_of(cli, tmp_path)
    with OnTerminal(["chat", instance]) as term:
        term.wait_for("you> ")
        term.type("world" + CTRL_A + "hello \r")  # typed at the end, edited at the start of the line
        term.wait_for("You said: hello world")
        term.wait_for("you> ", count=2)
        term.type(UP + "\r")  # the previous line, recalled
        term.wait_for("You said: hello world", count=2)
        term.wait_for("you> ", count=3)
        term.type("/help\r")
        term.wait_for("/fork [N]")
        term.type("/model\r")
        term.wait_for("model: replay:echo")
        term.type("/nope\r")
        term.wait_for("error: unknown command /nope")
        term.type("/fork 3\r")
        term.wait_for("now chatting there")
        term.type("in the fork\r")
        term.wait_for("You said: in the fork")
        term.type(CTRL_D)
        assert term.finish() == 0
    assert summaries(cli, instance)[2:] == ["hello world", "You said: hello world"] * 2
    (fork,) = [i for i in json.loads(cli("instances", "ls", "--json").out) if i["id"] != instance]
    in_fork = ["hello world", "You said: hello world", "in the fork", "You said: in the fork"]
    assert summaries(cli, fork["id"])[2:] == in_fork

    # the history outlives the process: the next chat recalls what this one typed
    with OnTerminal(["chat", instance]) as term:
        term.wait_for("you> ")
        term.type("\x12hello\r")  # Ctrl-R: search the history
        term.wait_for("You said: hello world")
        term.type("/exit\r")
        assert term.finish() == 0
    assert summaries(cli, instance)[-2:] == ["hello world", "You said: hello world"]


def test_approval_on_a_terminal(cli, tmp_path: Path, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    from fake_openai import calls

    instance = instance_of(cli, tmp_path, model="openai:fake")
    openai_env.queue(calls(("run_command", {"command": "touch made"})), text("Declined, fine."))
    with OnTerminal(["chat", instance, "--approve"]) as term:
        term.wait_for("you> ")
        term.type("make a file\r")
        term.wait_for("run it? [Y]es, [n]o, [a]lways")
        term.type("n\r")
        term.wait_for("Declined, fine.")
        term.type("/exit\r")
        assert term.finish() == 0
    assert cli("exec", instance, "--", "ls").out == ""
