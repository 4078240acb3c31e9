"""``domarkx edit INSTANCE --at N``: a fork before message N with the edited message, run from there."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, text

DOC = """\
## system

> You work in a shell.

## user

> count to two

## assistant

```bash
echo 1 > n; cat n
```

## user

> and one more

## assistant

```bash
echo $(( $(cat n) + 1 )) > n; cat n
```
"""


@pytest.fixture
def original(cli, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    result = cli("run", str(doc), "-q", "--name", "orig")
    assert result.code == 0, result
    return "orig"


def messages(cli, ref: str) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    return json.loads(cli("log", ref, "--json").out)  # type: ignore[no-any-return]


def test_editing_code_forks_and_reruns_the_rest(cli, original: str) -> None:  # type: ignore[no-untyped-def]
    before = cli("export", original).out
    result = cli("edit", original, "--at", "2", "--message", "```bash\necho 10 > n; cat n\n```", "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["executed"] == [2, 4] and report["cached"] == []
    fork = report["instance"]
    assert cli("exec", fork, "--", "cat n").out == "11\n"
    assert cli("export", original).out == before  # the original is untouched
    parent = json.loads(cli("instances", "inspect", fork, "--json").out)
    assert parent["parent_id"] == report["parent"]
    assert [m["summary"] for m in messages(cli, fork)][2] == "[bash] echo 10 > n; cat n"


def test_editing_a_user_message_offline_runs_nothing_new(cli, original: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("edit", original, "--at", "3", "--message", "and two more, please", "--json")
    report = json.loads(result.out)
    assert report["cached"] == [4] and report["executed"] == []
    fork = report["instance"]
    assert messages(cli, fork)[3] == {
        **messages(cli, original)[3],
        "summary": "and two more, please",
        "content": "and two more, please",
    }
    assert cli("exec", fork, "--", "cat n").out == "2\n"


def test_the_editor_opens_the_message_as_markdown(
    cli, original: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    editor = tmp_path / "editor.sh"
    seen = tmp_path / "seen.md"
    editor.write_text(f'#!/bin/sh\ncp "$1" {seen}\nsed -i \'s/+ 1/+ 5/\' "$1"\n')
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.setenv("VISUAL", str(editor))
    result = cli("edit", original, "--at", "4", "-q")
    assert result.code == 0, result
    assert seen.read_text().startswith("## assistant\n")
    assert "```text output\n2\n```" in seen.read_text()  # as export writes it, outputs included
    assert cli("exec", result.out.strip(), "--", "cat n").out == "6\n"


def test_the_model_answers_an_edited_user_message(cli, original: str, openai_env: FakeOpenAI) -> None:  # type: ignore[no-untyped-def]
    openai_env.queue(text("Three."))
    result = cli(
        "edit", original, "--at", "3", "--message", "what comes after two?", "--model", "openai:fake", "--json"
    )
    assert result.code == 0, result
    fork = json.loads(result.out)["instance"]
    assert [m["summary"] for m in messages(cli, fork)][3:] == ["what comes after two?", "Three."]
    sent = openai_env.requests[0].body["messages"]
    assert sent[-1] == {"role": "user", "content": "what comes after two?"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--at", "9", "--message", "x"), "--at 9 is out of range: the messages are 0..4"),
        (("--at", "2", "--message", "## user\n\nhi\n\n## assistant\n\nyo"), "exactly one message, found 2"),
        (("--at", "4", "--message", "> new code", "--model", "openai:fake"), "--model answers an edited user message"),
    ],
)
def test_edits_that_cannot_be_made_are_one_line_errors(cli, original: str, args: tuple[str, ...], needle: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("edit", original, *args)
    assert result.code == 2 and needle in result.err and "Traceback" not in result.err, result
    assert len(json.loads(cli("instances", "ls", "--json").out)) == 1  # no fork was made


def test_a_version_the_edited_message_claims_is_dropped(cli, original: str) -> None:  # type: ignore[no-untyped-def]
    claimed = messages(cli, original)[4]["workspace_version"]
    forged = f'```json msg-metadata\n{{"workspace_version": "{claimed}"}}\n```\n\n```bash\necho 7 > n\n```'
    result = cli("edit", original, "--at", "2", "--message", forged, "--json")
    fork = json.loads(result.out)["instance"]
    linked = messages(cli, fork)[2]["workspace_version"]
    assert linked and linked != claimed
    assert cli("exec", fork, "--", "cat n").out == "8\n"
