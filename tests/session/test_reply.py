"""Whatever a model sends, what is stored can be stored, exported and read back (session/_reply.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domarkx.data.models import ConversationMessage
from domarkx.errors import UsageError
from domarkx.llm.base import Completion, ToolCall
from domarkx.parsing.markdown import MarkdownParser
from domarkx.parsing.render import render_message
from domarkx.session._reply import accept, check_text
from domarkx.session.convert import from_document

anything = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=80)
"""Any code points at all, lone surrogates, newlines, backticks and U+2028 included."""


def stored(message: ConversationMessage) -> ConversationMessage:
    """The message as it comes back from the store and then from an export."""
    again = ConversationMessage.model_validate_json(message.model_dump_json())
    document = render_message(again)
    parsed = MarkdownParser().parse(document)
    (read,) = parsed.messages
    return from_document(read, document)


@settings(max_examples=150, deadline=None)
@given(
    content=anything,
    calls=st.lists(st.tuples(anything, anything, st.dictionaries(anything, anything, max_size=3)), max_size=4),
    model=anything,
)
def test_any_reply_is_stored_and_exported_faithfully(
    content: str, calls: list[tuple[str, str, dict[str, Any]]], model: str
) -> None:
    completion = Completion(
        content=content,
        tool_calls=tuple(ToolCall(id=i, name=n, arguments=a) for i, n, a in calls),
        model=model,
    )
    reply = accept(completion, f"openai:{model}")
    message = ConversationMessage(
        role="assistant", content=reply.content, tool_calls=reply.calls, metadata=reply.metadata
    )
    back = stored(message)
    assert [(c.id, c.name, c.arguments) for c in back.tool_calls] == [(c.id, c.name, c.arguments) for c in reply.calls]
    assert len({c.id for c in reply.calls}) == len(reply.calls)
    for call in reply.calls:
        assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", call.id)
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", call.name)
    assert bool(reply.repairs) == ("repaired" in reply.metadata)


def test_a_plain_reply_is_left_alone() -> None:
    completion = Completion(
        content="Hi", tool_calls=(ToolCall(id="call_1", name="run_command", arguments={"command": "ls"}),)
    )
    reply = accept(completion, "openai:gpt")
    assert reply.repairs == [] and reply.refused == {} and "repaired" not in reply.metadata
    assert reply.calls[0].id == "call_1" and reply.metadata["model"] == "openai:gpt"


@pytest.mark.parametrize(
    ("name", "stored_as", "runs"),
    [
        ("run_command", "run_command", True),
        ("run_command\n", "run_command", True),
        ("run`command", "run_command", False),
    ],
)
def test_a_mangled_tool_name_is_never_guessed(name: str, stored_as: str, runs: bool) -> None:
    reply = accept(Completion(content="", tool_calls=(ToolCall(id="c", name=name),)), "m:m")
    assert reply.calls[0].name == stored_as
    assert ("c" not in reply.refused) == runs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("caf\udce9", "the message is not UTF-8 text (byte 0xe9 at character 4)"),
        ("a\ud800", "the message holds a lone surrogate U+D800 at character 2"),
    ],
)
def test_text_the_store_cannot_hold_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        check_text(text)
    assert caught.value.message == message


def test_ordinary_text_passes() -> None:
    check_text("naïve café ✓ \U0001f600\n\u2028")
