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
