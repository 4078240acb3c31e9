"""The recorder in-process: what is refused at the door, what is recorded, and how."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from testplugins import Clashing, registered

from domarkx.data.models import ConversationMessage, ToolCallRecord
from domarkx.data.store import Store
from domarkx.errors import DomarkxError
from domarkx.mcp._recorder import CLIENT_KEY, DIED, GONE, Recorder
from domarkx.session.instance import InstanceManager, lock_name
from domarkx.session.outofband import exec_code

CLIENT = {"name": "unit", "version": "0"}


@pytest.fixture
def instances(domarkx_home: Path) -> Iterator[InstanceManager]:
    with Store(domarkx_home) as store:
        yield InstanceManager(store)


def start(instances: InstanceManager, doc: str = "## user\n\n> hi\n") -> Recorder:
    snapshot = instances.snapshots.build(doc.encode(), path="doc.md", base_dir=Path.cwd())
    instances.snapshots.save(snapshot)
    return Recorder(instances, instances.create(snapshot).id)


def call(recorder: Recorder, name: str, gone: bool = False, **arguments: object) -> tuple[str, bool]:
    flag = threading.Event()
    if gone:
        flag.set()
    answer = recorder.call(name, dict(arguments), CLIENT, flag)
    return answer.text, answer.ok


def messages(recorder: Recorder) -> list[ConversationMessage]:
    return recorder.instances.get(recorder.instance_id).messages


@pytest.mark.parametrize(
    ("name", "arguments", "needle"),
    [
        ("run_command", {"command": "x" * 1_000_001}, "more than the 1000000"),
        ("write_file", {"path": "a", "content": "\ud800"}, "lone surrogate"),
        ("run\ncommand", {}, 'no tool named "run\\ncommand"'),
        ("", {}, 'no tool named ""'),
    ],
    ids=["oversized", "surrogate", "newline-name", "empty-name"],
)
def test_refused_at_the_door_and_not_recorded(
    instances: InstanceManager, name: str, arguments: dict[str, object], needle: str
) -> None:
    recorder = start(instances)
    text, ok = call(recorder, name, **arguments)
    assert not ok and text.startswith("error: refused: ") and needle in text
    assert len(messages(recorder)) == 1


@pytest.mark.parametrize(
    ("name", "arguments", "needle"),
    [
        ("diff", {"from": "0"}, "error: diff: from: Input should be a valid integer"),
        ("diff", {"from": 0, "extra": 1}, "error: diff: extra: Extra inputs are not permitted"),
        ("checkpoint", {}, "error: checkpoint: note: Field required"),
        ("rewind", {"to": 7}, "error: to 7 is out of range: the messages are 0..0"),
        ("rewind", {"to": True}, "error: rewind: to: Input should be a valid integer"),
        ("fork", {"at": -1}, "error: at -1 is out of range"),
        ("run_command", {"command": 3}, "error: run_command: argument 'command' must be of type string"),
    ],
)
def test_bad_arguments_are_recorded_error_results(
    instances: InstanceManager, name: str, arguments: dict[str, object], needle: str
) -> None:
    recorder = start(instances)
    text, ok = call(recorder, name, **arguments)
    assert not ok and text.startswith(needle), text
    recorded = messages(recorder)
    assert [m.role for m in recorded] == ["user", "assistant", "tool"]
    assert recorded[1].tool_calls[0].name == name and recorded[1].metadata == {CLIENT_KEY: CLIENT}
    assert not recorded[2].tool_ok and recorded[2].content == text


def test_a_busy_or_stopped_instance_refuses_and_records_nothing(instances: InstanceManager, domarkx_home: Path) -> None:
    recorder = start(instances)
    with Store(domarkx_home) as other, other.hold(lock_name(recorder.instance_id)):
        text, ok = call(recorder, "log")
    assert not ok and "is busy" in text
    instances.set_status(recorder.instance_id, "stopped")
    text, ok = call(recorder, "log")
    assert not ok and "stopped" in text
    assert len(messages(recorder)) == 1


def test_a_call_whose_client_went_away_is_marked(instances: InstanceManager) -> None:
    recorder = start(instances)
    text, ok = call(recorder, "run_command", gone=True, command="echo hi")
    assert ok and text == "hi\n"
    result = messages(recorder)[-1]
    assert result.metadata == {"name": "run_command", "interrupted": GONE} and result.content == "hi\n"


def test_an_unanswered_call_left_by_a_dead_process_is_closed_as_interrupted(instances: InstanceManager) -> None:
    recorder = start(instances)
    instance = instances.get(recorder.instance_id)
    dangling = ConversationMessage(
        role="assistant",
        tool_calls=[ToolCallRecord(id="mcp_dead", name="run_command", arguments={"command": "touch half"})],
        metadata={CLIENT_KEY: CLIENT},
    )
    instance.messages.append(dangling)
    instances.save_messages(instance, 1)
    workspace = instances.workspaces.open(instance.workspace_id)
    instances.workspaces.call(workspace, "run_command", {"command": "touch half"})  # what it did before dying

    call(recorder, "log")
    recorded = messages(recorder)
    assert [m.role for m in recorded] == ["user", "assistant", "tool", "assistant", "tool"]
    assert recorded[2].tool_call_id == "mcp_dead" and not recorded[2].tool_ok
    assert recorded[2].metadata["interrupted"] == DIED
    fork = instances.fork(recorder.instance_id, 2)
    outcome = exec_code(instances, fork.id, "ls").outcome
    assert outcome.output["stdout"] == "half\n"


def test_a_call_from_an_earlier_document_is_left_alone(instances: InstanceManager) -> None:
    """Only calls an MCP client made are closed as interrupted; a document's own unanswered call is its business."""
    doc = "## assistant\n\n```json tool-call id=c1 name=list_dir\n{}\n```\n"
    recorder = start(instances, doc)
    call(recorder, "log")
    assert [m.role for m in messages(recorder)] == ["assistant", "assistant", "tool"]


def test_tools_whose_names_clash_with_session_tools_stop_the_server(
    instances: InstanceManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    with registered(monkeypatch, "clashing", Clashing):
        recorder = start(instances, "```workspace-config\nresources:\n  - type: clashing\n```\n\n## user\n\n> x\n")
        with pytest.raises(DomarkxError, match="workspace tools log have the names of session tools"):
            recorder.tools()
