"""A model reply is input from a stranger (issue 10, items 8 and 9).

Tool-call ids and names that would break a fence, text the store cannot hold,
and a user's text that is not UTF-8: each ends in a stored, exportable,
committable conversation or in one error line with nothing half-written.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, calls, text

DOC = """\
```session-config
{"model": "openai:fake"}
```

## user

> Hello.

## assistant

> Hello.
"""


@pytest.fixture
def instance(cli, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(DOC, encoding="utf-8")
    return cli("run", str(doc), "-q").out.strip()  # type: ignore[no-any-return]


def round_trips(cli, instance: str, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    """The instance exports, the export imports back to the same text, and the instance commits."""
    exported = cli("export", instance)
    assert exported.code == 0, exported
    again = tmp_path / "again.md"
    again.write_text(exported.out, encoding="utf-8")
    snapshot = cli("import", str(again), "-q")
    assert snapshot.code == 0, snapshot
    assert cli("export", snapshot.out.strip()).out == exported.out
    committed = cli("commit", instance)
    assert committed.code == 0, committed
    return exported.out  # type: ignore[no-any-return]


HOSTILE_IDS = {
    "newline": ["call\n1"],
    "backticks": ["call```1"],
    "quote-and-space": ['call "1" x'],
    "line-separator": ["call\u20281"],
    "long": ["c" * 500],
}


@pytest.mark.parametrize("ids", list(HOSTILE_IDS.values()), ids=list(HOSTILE_IDS))
def test_a_hostile_tool_call_id_is_normalised_before_anything_is_stored(  # type: ignore[no-untyped-def]
    cli, instance: str, tmp_path: Path, openai_env: FakeOpenAI, ids: list[str]
) -> None:
    openai_env.queue(calls(("write_file", {"path": "a.txt", "content": "A"}), call_ids=ids), text("Done."))
    result = cli("send", instance, "write a.txt")
    assert result.code == 0, result
    assert "the model's reply was repaired" in result.err
    assert cli("exec", instance, "--", "cat a.txt").out == "A"
    exported = round_trips(cli, instance, tmp_path)
    assert '"repaired"' in exported
    # the id the model sees again is the one stored, on the call and on its result
    sent = openai_env.requests[1].body["messages"]
    call_id = sent[-2]["tool_calls"][0]["id"]
    assert sent[-1]["tool_call_id"] == call_id and "\n" not in call_id and "`" not in call_id


def test_one_id_used_twice_in_a_reply_is_made_unique(  # type: ignore[no-untyped-def]
    cli, instance: str, tmp_path: Path, openai_env: FakeOpenAI
) -> None:
    openai_env.queue(
        calls(
            ("write_file", {"path": "a.txt", "content": "A"}),
            ("write_file", {"path": "b.txt", "content": "B"}),
            call_ids=["same", "same"],
        ),
        text("Done."),
    )
    assert cli("send", instance, "two files").code == 0
    sent = openai_env.requests[1].body["messages"]
    assert [c["id"] for c in sent[-3]["tool_calls"]] == ["same", "same_2"]
    assert [m["tool_call_id"] for m in sent[-2:]] == ["same", "same_2"]
    round_trips(cli, instance, tmp_path)


@pytest.mark.parametrize(
    ("name", "runs"),
    [("write_file\n", True), (" write_file", True), ("write`file", False), ("write\nfile", False)],
    ids=["trailing-newline", "leading-space", "backtick", "inner-newline"],
)
def test_a_hostile_tool_name_is_normalised_and_an_unknown_one_fails_as_a_result(  # type: ignore[no-untyped-def]
    cli, instance: str, tmp_path: Path, openai_env: FakeOpenAI, name: str, runs: bool
) -> None:
    openai_env.queue(calls((name, {"path": "a.txt", "content": "A"})), text("Done."))
    assert cli("send", instance, "write a.txt").code == 0
    assert cli("exec", instance, "--", "ls").out == ("a.txt\n" if runs else "")
    result = openai_env.requests[1].body["messages"][-1]
    assert result["role"] == "tool" and ("is not a valid tool name" in result["content"]) != runs
    round_trips(cli, instance, tmp_path)


def test_a_lone_surrogate_in_a_reply_is_replaced_and_everything_is_recorded(  # type: ignore[no-untyped-def]
    cli, instance: str, tmp_path: Path, openai_env: FakeOpenAI
) -> None:
    openai_env.queue(
        calls(("write_file", {"path": "a.txt", "content": "x\ud800y"}), content="Writing \udfff now.", model="m\ud800"),
        text("Done \ud800."),
    )
    result = cli("send", instance, "write it")
    assert result.code == 0, result
    assert "Writing \ufffd now." in result.out and "Done \ufffd." in result.out
    assert "not valid Unicode replaced by U+FFFD" in result.err
    log = json.loads(cli("log", instance, "--json").out)
    assert [e["role"] for e in log[-4:]] == ["user", "assistant", "tool", "assistant"]
    assert cli("exec", instance, "--", "cat a.txt").out == "x\ufffdy"  # what ran is what is recorded
    exported = round_trips(cli, instance, tmp_path)
    assert "Writing \ufffd now." in exported and '"model": "openai:m\ufffd"' in exported


def test_text_that_is_not_utf8_is_refused_in_one_line_and_nothing_is_stored(  # type: ignore[no-untyped-def]
    cli, instance: str, openai_env: FakeOpenAI
) -> None:
    before = cli("log", instance, "--json").out
    argv = subprocess.run([b"domarkx", b"send", instance.encode(), b"caf\xe9"], capture_output=True, check=False)
    stdin = subprocess.run(["domarkx", "send", instance, "-"], input=b"ok \xff\xfe", capture_output=True, check=False)
    for result, where in ((argv, 4), (stdin, 4)):
        assert result.returncode == 2
        lines = result.stderr.decode().splitlines()
        assert lines[0].startswith("error: the message is not UTF-8 text (byte 0x")
        assert f"at character {where})" in lines[0]
        assert lines[1].startswith("  hint: ") and len(lines) == 2
    assert cli("log", instance, "--json").out == before
    assert openai_env.requests == []
