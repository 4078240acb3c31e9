"""The replay provider: offline, deterministic, and stateless across processes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from domarkx.errors import DocumentError, ProviderError, UsageError
from domarkx.llm.base import ChatMessage, Completion, ToolDefinition, get_provider
from domarkx.llm.replay import ReplayProvider, load_script

DOCS = Path(__file__).resolve().parents[2] / "docs" / "providers.md"
TOOLS = [ToolDefinition("shell_run", "Run a command.", {"type": "object"})]
SCRIPT = """\
- content: I'll look at the files first.
  tool_calls:
    - name: shell_run
      arguments: {command: ls}
- content: |
    There are two files.
    Both are small.
- content: Bye now.
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


def answer(reply: Completion) -> list[ChatMessage]:
    """The messages the turn loop appends for ``reply``: the assistant's, then one result per call."""
    messages = [ChatMessage("assistant", reply.content, tool_calls=reply.tool_calls)]
    messages += [ChatMessage("tool", f"ran {c.name}", tool_call_id=c.id) for c in reply.tool_calls]
    return messages


@pytest.mark.parametrize("spec", ["replay:", "replay:echo"])
def test_echo_repeats_the_last_user_message(spec: str) -> None:
    provider = get_provider(spec, {})
    pieces: list[str] = []
    conversation = [
        ChatMessage("user", "first"),
        ChatMessage("assistant", "ok"),
        ChatMessage("user", "second one"),
    ]

    reply = provider.complete(conversation, TOOLS, on_text=pieces.append)

    assert reply.content == "You said: second one"
    assert "".join(pieces) == reply.content
    assert len(pieces) > 1
    assert reply.tool_calls == ()


def test_a_script_plays_turn_by_turn(script: Path) -> None:
    provider = get_provider(f"replay:{script}", {})
    conversation = [ChatMessage("system", "Be brief."), ChatMessage("user", "What is here?")]

    first = provider.complete(conversation, TOOLS)
    assert first.content == "I'll look at the files first."
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("shell_run", {"command": "ls"})]
    assert first.finish_reason == "tool_calls"

    conversation += answer(first)
    second = provider.complete(conversation, TOOLS)
    assert second.content == "There are two files.\nBoth are small.\n"
    assert second.tool_calls == ()

    conversation += [*answer(second), ChatMessage("user", "Thanks.")]
    assert provider.complete(conversation, TOOLS).content == "Bye now."


def test_the_position_survives_a_new_process(script: Path) -> None:
    """Each CLI call builds a new provider: only the conversation carries the position."""
    conversation = [ChatMessage("user", "What is here?")]
    conversation += answer(ReplayProvider(str(script)).complete(conversation, TOOLS))

    later = ReplayProvider(str(script)).complete(conversation, TOOLS)

    assert later.content.startswith("There are two files.")


def test_the_same_conversation_gets_the_same_answer(script: Path) -> None:
    conversation = [ChatMessage("user", "What is here?")]
    replies = [ReplayProvider(str(script)).complete(conversation, TOOLS) for _ in range(2)]
    assert replies[0] == replies[1]


def test_a_history_of_other_replies_starts_the_script_at_its_beginning(script: Path) -> None:
    history = [
        ChatMessage("user", "Earlier question."),
        ChatMessage("assistant", "An answer written in the document."),
        ChatMessage("user", "What is here?"),
    ]
    assert ReplayProvider(str(script)).complete(history, TOOLS).content == "I'll look at the files first."


def test_played_turns_match_despite_reflowed_whitespace(script: Path) -> None:
    """A reply exported to Markdown and imported again may come back with its lines joined."""
    conversation = [ChatMessage("user", "What is here?")]
    conversation += answer(ReplayProvider(str(script)).complete(conversation, TOOLS))
    conversation += [
        ChatMessage("assistant", "There are two files. Both are small."),
        ChatMessage("user", "ok"),
    ]
    assert ReplayProvider(str(script)).complete(conversation, TOOLS).content == "Bye now."


def test_an_exhausted_script_is_a_clear_error(script: Path) -> None:
    provider = ReplayProvider(str(script))
    conversation = [ChatMessage("user", "go")]
    for _ in range(3):
        conversation += answer(provider.complete(conversation, TOOLS))
        conversation.append(ChatMessage("user", "more"))

    with pytest.raises(ProviderError, match=r"has no turn left \(all 3 played\)") as caught:
        provider.complete(conversation, TOOLS)
    assert str(script) in caught.value.message


def test_a_tool_the_workspace_does_not_offer_is_a_usage_error(script: Path) -> None:
    with pytest.raises(UsageError, match="calls tool 'shell_run', which is not offered") as caught:
        ReplayProvider(str(script)).complete([ChatMessage("user", "go")], [])
    assert caught.value.hint == "offered tools: none"


def test_json_scripts_and_a_turns_key_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"turns": [{"content": "from JSON"}]}), encoding="utf-8")
    assert ReplayProvider(str(path)).complete([ChatMessage("user", "hi")], []).content == "from JSON"


def test_a_missing_script_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="replay script not found"):
        get_provider(f"replay:{tmp_path / 'nope.yaml'}", {})


def test_bad_yaml_points_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- content: fine\n- content: [unclosed\n", encoding="utf-8")
    with pytest.raises(DocumentError) as caught:
        load_script(path)
    assert caught.value.path == str(path)
    assert caught.value.line >= 2
    assert caught.value.format().startswith(f"{path}:")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("just a string\n", "non-empty list of turns", id="not-a-list"),
        pytest.param("[]\n", "non-empty list of turns", id="empty"),
        pytest.param("- {}\n", "turn 1: Value error, a turn needs content, tool_calls or both", id="empty-turn"),
        pytest.param("- content: a\n- contnet: b\n", "turn 2 (contnet)", id="typo"),
        pytest.param("- tool_calls: [{name: 'bad name'}]\n", "turn 1 (tool_calls.0.name)", id="bad-tool-name"),
    ],
)
def test_bad_scripts_say_which_turn(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "script.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        load_script(path)
    assert words in caught.value.message
    assert "\n" not in caught.value.format()


def test_the_example_in_the_docs_is_a_valid_script(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml replay-script\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/providers.md should show a replay script in a ```yaml replay-script block"
    path = tmp_path / "from-docs.yaml"
    path.write_text(blocks[0], encoding="utf-8")
    assert len(load_script(path)) >= 2


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello.md"


def test_a_recorded_session_with_code_blocks_and_outputs_replays_where_it_stands(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """examples/hello.md: assistant messages made of prose, bash blocks and (in the export) their outputs."""
    instance = cli("run", str(EXAMPLE), "-q").out.strip()
    recorded = tmp_path / "export.md"
    assert cli("export", instance, "-o", str(recorded)).code == 0
    assert "text output" in recorded.read_text(encoding="utf-8")

    # Branch after the second question: the first answer is played, the second is next.
    fork = cli("fork", instance, "--at", "3", "-q").out.strip()
    answered = cli("continue", fork, "--model", f"replay:{recorded}")
    assert answered.code == 0, answered
    assert answered.out.startswith("Counting:\n\n```bash\nwc -l project/README.md\n```")
    assert "I'll create the folder" not in answered.out

    # Everything recorded has been played in the original: replaying does not start over.
    exhausted = cli("send", instance, "more?", "--model", f"replay:{recorded}")
    assert exhausted.code == 1
    assert "has no turn left (all 2 played)" in exhausted.err
