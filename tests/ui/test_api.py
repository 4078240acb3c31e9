"""The endpoints' data in-process (no HTTP, no browser): pages, messages, diffs, files, turns as events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from domarkx.data.models import ToolCallRecord
from domarkx.data.store import Store
from domarkx.errors import PathEscapeError, UsageError
from domarkx.ui import api
from domarkx.ui.turns import Turn, Turns
from fake_openai import FakeOpenAI, error, text

from .conftest import PYTHON_DOC, make_instance


@pytest.fixture
def ctx(domarkx_home: Path) -> Iterator[tuple[api.Context, str]]:
    instance = make_instance(domarkx_home, name="demo")
    with Store(domarkx_home) as store:
        yield api.Context.open(store), instance


def test_a_page_of_messages_defaults_to_the_end(ctx: tuple[api.Context, str], monkeypatch: pytest.MonkeyPatch) -> None:
    context, instance = ctx
    monkeypatch.setattr(api, "PAGE", 3)
    page = api.messages(context, instance, start=None, stop=None)
    assert page["total"] == 8 and page["start"] == 5
    assert [m["index"] for m in page["messages"]] == [5, 6, 7]
    assert [m["index"] for m in api.messages(context, instance, start=1, stop=None)["messages"]] == [1, 2, 3]
    clamped = api.messages(context, instance, start=-4, stop=99)
    assert clamped["start"] == 0 and len(clamped["messages"]) == 8
    assert api.messages(context, instance, start=9, stop=12)["messages"] == []


def test_messages_carry_code_outputs_calls_and_results(ctx: tuple[api.Context, str]) -> None:
    context, instance = ctx
    by_index = {m["index"]: m for m in api.messages(context, instance, start=0, stop=8)["messages"]}
    assert "<strong>bold</strong>" in by_index[1]["html"]
    assert "&lt;script&gt;" in by_index[3]["html"] and "<script" not in by_index[3]["html"]
    appended = by_index[7]["code"][0]
    assert appended["lang"] == "bash" and appended["output"] == {
        "ok": True,
        "text": "first line\nsecond line\nthird line\n",
    }
    call = by_index[4]["tool_calls"][0]
    assert call["id"] == "call_plan" and '"path": "plan.md"' in call["arguments"]
    assert (
        by_index[5]["role"] == "tool"
        and by_index[5]["text"] == "wrote 17 bytes to plan.md"
        and by_index[5]["html"] == ""
    )
    assert by_index[5]["tool_call_id"] == "call_plan"
    assert by_index[2]["workspace_version"] and by_index[1]["workspace_version"] is None


def test_instance_header_and_overview(ctx: tuple[api.Context, str]) -> None:
    context, instance = ctx
    head = api.instance(context, "demo")
    assert head["id"] == instance and head["messages"] == 8 and head["title"] == "ui demo"
    assert head["resources"] == [{"name": "shell", "type": "local_shell"}]
    listed = api.overview(context)
    assert [i["id"] for i in listed["instances"]] == [instance]
    assert listed["snapshots"][0]["title"] == "ui demo"


def test_diff_of_a_message_against_the_one_before(ctx: tuple[api.Context, str]) -> None:
    context, instance = ctx
    found = api.diff(context, instance, 2)
    assert found["old"] != found["new"]
    (shell,) = found["resources"]
    names = {c["name"]: c for c in shell["changes"]}
    assert names["notes.txt"]["status"] == "added" and "+first line" in names["notes.txt"]["detail"]
    with pytest.raises(UsageError, match="out of range"):
        api.diff(context, instance, 8)


def test_python_diff_shows_files_and_variables(domarkx_home: Path) -> None:
    instance = make_instance(domarkx_home, PYTHON_DOC, name="calc")
    with Store(domarkx_home) as store:
        context = api.Context.open(store)
        (py,) = api.diff(context, instance, 3)["resources"]
        changes = {(c["kind"], c["name"]): c for c in py["changes"]}
        assert changes[("variable", "x")]["status"] == "modified" and "→ 42" in changes[("variable", "x")]["detail"]
        assert changes[("variable", "names")]["status"] == "added"
        assert "+forty-two" in changes[("file", "result.txt")]["detail"]
        first = api.file(context, instance, at=1, resource="py", path="result.txt")
        assert first["text"] == "forty-one\n" and first["size"] == 10


def test_files_at_a_message_and_after(ctx: tuple[api.Context, str]) -> None:
    context, instance = ctx
    at_two = {e["name"] for e in api.files(context, instance, at=2, resource=None, path="")["entries"]}
    assert {"notes.txt", "docs"} <= at_two and "plan.md" not in at_two
    plan = api.file(context, instance, at=4, resource="shell", path="plan.md")
    assert plan["text"] == "1. notes\n2. docs\n"
    head = api.file(context, instance, at=None, resource=None, path="notes.txt")
    assert head["text"].endswith("third line\n")


def test_files_refuse_paths_and_unknown_resources(ctx: tuple[api.Context, str]) -> None:
    context, instance = ctx
    with pytest.raises(PathEscapeError):
        api.files(context, instance, at=2, resource=None, path="../..")
    with pytest.raises(UsageError, match="no resource"):
        api.files(context, instance, at=2, resource="nope", path="")


def test_fork_checks_its_input(ctx: tuple[api.Context, str]) -> None:
    context, instance = ctx
    for body in ({}, {"at": "3"}, {"at": True}, {"at": 2, "name": 5}):
        with pytest.raises(UsageError):
            api.fork(context, instance, body)
    made = api.fork(context, instance, {"at": 2, "name": "forked"})
    assert api.instance(context, made["id"])["messages"] == 3


# -- turns ------------------------------------------------------------------------------


def wait(turn: Turn) -> list[str]:
    seen = 0
    kinds: list[str] = []
    while True:
        events, over = turn.read(seen, timeout=30)
        seen += len(events)
        kinds += [e.kind for e in events]
        if over:
            return kinds


def test_a_turn_streams_as_events(domarkx_home: Path, openai_env: FakeOpenAI) -> None:
    instance = make_instance(domarkx_home, name="talk")
    openai_env.queue(text("Hello there, friend."))
    turns = Turns(domarkx_home)
    turn = turns.start(instance, "hi", model=None, approve=None)
    kinds = wait(turn)
    assert kinds.count("text") > 1 and kinds[-1] == "done"
    assert "".join(e.data["delta"] for e in turn.events if e.kind == "text") == "Hello there, friend."
    assert turns.get(turn.id) is turn


def test_a_failed_turn_ends_with_one_line(domarkx_home: Path, openai_env: FakeOpenAI) -> None:
    instance = make_instance(domarkx_home, name="fails")
    openai_env.queue(error(401, "bad key"))
    turn = Turns(domarkx_home).start(instance, "hi", model=None, approve=None)
    assert wait(turn)[-1] == "failed"
    message = turn.events[-1].data["message"]
    assert "\n" not in message and message


def test_turns_refuse_empty_text_and_a_second_turn(domarkx_home: Path, fake_openai: FakeOpenAI) -> None:
    turns = Turns(domarkx_home)
    with pytest.raises(UsageError, match="empty"):
        turns.start("x", "  ", model=None, approve=None)
    blocked = Turn(id="a" * 16, instance_id="i", approve=False)
    turns._turns[blocked.id] = blocked
    with pytest.raises(UsageError, match="still running"):
        turns.start("i", "hello", model=None, approve=None)


def test_approval_waits_for_the_page() -> None:
    turn = Turn(id="b" * 16, instance_id="i", approve=True)
    call = ToolCallRecord(id="c1", name="run_command", arguments={"command": "ls"})
    answers: list[bool] = []
    worker = threading.Thread(target=lambda: answers.append(turn.ask(call)))
    worker.start()
    events, _ = turn.read(0, timeout=10)
    assert events[0].kind == "approval" and events[0].data["call"]["id"] == "c1"
    with pytest.raises(UsageError):
        turn.decide("c1", "maybe")
    with pytest.raises(UsageError):
        turn.decide("other", "yes")
    turn.decide("c1", "always")
    worker.join(10)
    assert answers == [True] and turn.always
    assert turn.ask(ToolCallRecord(id="c2", name="run_command")) is True  # "always": no second question
    refused = Turn(id="c" * 16, instance_id="i", approve=True)
    worker = threading.Thread(target=lambda: answers.append(refused.ask(call)))
    worker.start()
    refused.read(0, timeout=10)
    refused.decide("c1", "no")
    worker.join(10)
    assert answers[-1] is False


ODD_NAMES = """\
## user

> Make odd names.

## assistant

```bash
printf 'latin-1\\n' > "$(printf 'caf\\351.txt')"
printf 'two lines\\n' > "$(printf 'new\\nline.txt')"
```
"""


def test_files_with_names_that_are_not_text(domarkx_home: Path) -> None:
    instance = make_instance(domarkx_home, ODD_NAMES, name="odd")
    with Store(domarkx_home) as store:
        context = api.Context.open(store)
        names = {e["name"] for e in api.files(context, instance, at=None, resource=None, path="")["entries"]}
        assert names == {"caf\\xe9.txt", "new\\nline.txt"}
        assert api.file(context, instance, at=None, resource=None, path="caf\\xe9.txt")["text"] == "latin-1\n"
        _, data = api.file_bytes(context, instance, at=None, resource=None, path="new\\nline.txt")
        assert data == b"two lines\n"


def test_old_finished_turns_are_dropped(domarkx_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from domarkx.ui import turns as module

    monkeypatch.setattr(module, "KEPT", 2)
    turns = Turns(domarkx_home)
    for n in range(4):
        done = Turn(id=f"{n:016x}", instance_id=f"i{n}", approve=False, done=True)
        turns._turns[done.id] = done
    fresh = turns.start("no-such-instance", "hello", model=None, approve=None)
    assert sorted(turns._turns)[:2] == [f"{2:016x}", f"{3:016x}"] and len(turns._turns) == 3
    assert wait(fresh)[-1] == "failed" and "no-such-instance" in fresh.events[-1].data["message"]


def test_answering_needs_a_pending_message(domarkx_home: Path, openai_env: FakeOpenAI) -> None:
    instance = make_instance(domarkx_home, name="answered")
    turn = Turns(domarkx_home).start(instance, None, model=None, approve=None)
    assert wait(turn)[-1] == "failed" and "nothing to answer" in turn.events[-1].data["message"]
    assert openai_env.requests == []
