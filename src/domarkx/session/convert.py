"""Between a snapshot's document messages and an instance's conversation messages."""

from __future__ import annotations

import json

from domarkx.data.models import (
    Block,
    ConversationMessage,
    Message,
    SessionSnapshot,
    ToolCallRecord,
)
from domarkx.parsing.markdown import line_offsets


def from_snapshot(snapshot: SessionSnapshot) -> list[ConversationMessage]:
    """The conversation an instance starts with: one message per document message."""
    offsets = line_offsets(snapshot.document)
    return [from_document(msg, snapshot.document[offsets[msg.start] : offsets[msg.end]]) for msg in snapshot.messages]


def from_document(msg: Message, raw: str) -> ConversationMessage:
    """One document message as a conversation message; ``raw`` keeps its Markdown."""
    tool_calls: list[ToolCallRecord] = []
    code: list[Block] = []
    content = msg.text
    tool_call_id: str | None = None
    tool_ok = True
    for block in msg.code_blocks:
        if "tool-call" in block.flags:
            tool_calls.append(
                ToolCallRecord(id=block.attrs["id"], name=block.attrs["name"], arguments=json.loads(block.text))
            )
        elif "tool-result" in block.flags:
            tool_call_id = block.attrs.get("id")
            tool_ok = "error" not in block.flags
            content = block.text.removesuffix("\n")
        else:
            code.append(block)
    version = msg.metadata.get("workspace_version")
    return ConversationMessage(
        role=msg.role,
        content=content,
        metadata=msg.metadata,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id,
        tool_ok=tool_ok,
        code=code,
        # Only assistant messages link workspace versions; a user message's claim is never followed.
        workspace_version=version if isinstance(version, str) and msg.role == "assistant" else None,
        raw=raw,
    )


def runnable(message: ConversationMessage) -> list[tuple[int, Block]]:
    """The code blocks an offline run executes, with their index among ``message.code``."""
    return [
        (i, b)
        for i, b in enumerate(message.code)
        if "output" not in b.flags and "no-exec" not in b.flags and b.lang is not None
    ]
