"""``domarkx chat`` through the installed script, its prompt answered on stdin."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def test_chat_streams_replies_and_keeps_the_conversation(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text('```session-config\n{"model": "replay:echo"}\n```\n\n## user\n\n> hi\n')
    instance = cli("run", str(doc), "-q").out.strip()
    chat = subprocess.run(
        ["domarkx", "chat", instance],
        input="first question\n\nsecond question\n/exit\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert chat.returncode == 0, chat.stderr
    assert "You said: first question" in chat.stdout
    assert "You said: second question" in chat.stdout
    log = json.loads(cli("log", instance, "--json").out)
    assert [e["summary"] for e in log[1:]] == [
        "first question",
        "You said: first question",
        "second question",
        "You said: second question",
    ]


def test_chat_reports_errors_and_goes_on(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text('```session-config\n{"model": "replay:missing-script.yaml"}\n```\n\n## user\n\n> hi\n')
    instance = cli("run", str(doc), "-q").out.strip()
    chat = subprocess.run(
        ["domarkx", "chat", instance], input="hello\n", capture_output=True, text=True, timeout=60, check=False
    )
    assert chat.returncode == 0
    assert "error: replay script not found" in chat.stderr
    assert "Traceback" not in chat.stderr


def test_ctrl_c_stops_the_turn_not_the_chat(cli, tmp_path: Path, openai_env) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import time

    from fake_openai import fault, text

    doc = tmp_path / "doc.md"
    doc.write_text('```session-config\n{"model": "openai:fake"}\n```\n\n## user\n\n> hi\n')
    instance = cli("run", str(doc), "-q").out.strip()
    openai_env.queue(fault("hang"), text("after the interrupt"))
    chat = subprocess.Popen(
        ["domarkx", "chat", instance],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert chat.stdin is not None
    chat.stdin.write("this one hangs\n")
    chat.stdin.flush()
    deadline = time.monotonic() + 30
    while not openai_env.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert openai_env.requests, "the model was never called"
    chat.send_signal(signal.SIGINT)
    out, err = chat.communicate("and this one works\n/exit\n", timeout=60)
    assert chat.returncode == 0, err
    assert "turn stopped" in err
    assert "after the interrupt" in out
    summaries = [e["summary"] for e in json.loads(cli("log", instance, "--json").out)]
    assert summaries[-3:] == ["this one hangs", "and this one works", "after the interrupt"]
