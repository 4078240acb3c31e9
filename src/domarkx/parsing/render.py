"""Markdown out: conversation messages and whole instances as documents.

Messages that came from a document keep their original Markdown; only their
``msg-metadata`` block is rewritten (when the metadata changed, e.g. a new
workspace version) and output blocks are placed after the code blocks that ran.
Messages created by an instance are rendered in the canonical form that
:class:`~domarkx.parsing.markdown.MarkdownParser` reads back (docs/format.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from domarkx.data.models import FORMAT_VERSION, BlockOutput, ConversationMessage
from domarkx.parsing.fences import format_info

_BACKTICKS = re.compile(r"`{3,}")


def fence(content: str, info: str) -> str:
    """A backtick fence around ``content``, longer than any backtick run inside it."""
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(content)), default=2)
    ticks = "`" * max(3, longest + 1)
    body = content if content.endswith("\n") or not content else content + "\n"
    return f"{ticks}{info}\n{body}{ticks}\n"


def quote(text: str) -> str:
    """Text as a blockquote: every line prefixed so nothing inside can end the message."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    return "".join(f"> {line}\n" if line else ">\n" for line in lines)


def metadata_block(metadata: dict[str, Any]) -> str:
    return fence(json.dumps(metadata, indent=2, ensure_ascii=False, sort_keys=True), "json msg-metadata")


def exported_metadata(message: ConversationMessage) -> dict[str, Any]:
    """The metadata an export writes: the message's own plus its workspace version."""
    data = {k: v for k, v in message.metadata.items() if k != "workspace_version"}
    if message.workspace_version:
        data["workspace_version"] = message.workspace_version
    return data


def output_block(output: BlockOutput) -> str:
    return fence(output.text, "text output" if output.ok else "text output error")


def render_message(message: ConversationMessage) -> str:
    """Canonical Markdown for a message the instance created."""
    parts = [f"## {message.role}\n"]
    metadata = exported_metadata(message)
    if metadata:
        parts.append(metadata_block(metadata))
    if message.role == "tool":
        attrs = {"id": message.tool_call_id or ""}
        flags = ["tool-result"] if message.tool_ok else ["tool-result", "error"]
        parts.append(fence(message.content, format_info("text", attrs, flags)))
    elif message.content:
        parts.append(quote(message.content))
    for block, output in _code_with_outputs(message):
        parts.append(fence(block.text, format_info(block.lang, block.attrs, block.flags)))
        if output is not None:
            parts.append(output_block(output))
    for call in message.tool_calls:
        args = json.dumps(call.arguments, indent=2, ensure_ascii=False, sort_keys=True)
        parts.append(fence(args, format_info("json", {"id": call.id, "name": call.name}, ["tool-call"])))
    return "\n".join(parts) + "\n"


def _code_with_outputs(message: ConversationMessage) -> Iterable[tuple[Any, BlockOutput | None]]:
    by_block = {o.block: o for o in message.outputs}
    return [(b, by_block.get(i)) for i, b in enumerate(message.code) if "output" not in b.flags]


def edit_raw(message: ConversationMessage) -> str:
    """A document message's own Markdown, with new metadata and outputs spliced in."""
    from domarkx.parsing.markdown import MarkdownParser, line_offsets

    assert message.raw is not None
    raw = message.raw
    metadata = exported_metadata(message)
    if metadata == message.metadata and not message.outputs:
        return raw
    parsed = MarkdownParser().parse(raw).messages[0]
    if metadata == parsed.metadata and not message.outputs:
        return raw
    offsets = line_offsets(raw)
    lines = [raw[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    inserts: dict[int, str] = {}
    removed: set[int] = set()
    # Same selection as session.convert.from_document, so output indices line up.
    code = [b for b in parsed.blocks if b.kind == "code" and not {"tool-call", "tool-result"} & set(b.flags)]
    by_block = {o.block: o for o in message.outputs}
    for index, block in enumerate(code):
        output = by_block.get(index)
        if output is None:
            continue
        following = next((b for b in code if b.start >= block.end), None)
        text = output_block(output).replace("\n", newline)
        if following is not None and "output" in following.flags and _only_blank(lines, block.end, following.start):
            removed.update(range(following.start, following.end))
            inserts[following.start] = text
        else:
            inserts[block.end] = newline + text
    if metadata != parsed.metadata:
        meta_text = metadata_block(metadata).replace("\n", newline) if metadata else ""
        if parsed.metadata_lines is not None:
            start, end = parsed.metadata_lines
            removed.update(range(start, end))
            inserts[start] = inserts.get(start, "") + meta_text
        elif meta_text:
            inserts[1] = newline + meta_text + inserts.get(1, "")
    out = []
    for i, line in enumerate(lines):
        out.append(inserts.get(i, ""))
        if i not in removed:
            out.append(line)
    out.append(inserts.get(len(lines), ""))
    return "".join(out)


def _only_blank(lines: list[str], start: int, end: int) -> bool:
    return all(not lines[i].strip() for i in range(start, end))


def join_messages(head: str, messages: Iterable[str]) -> str:
    """Concatenate document parts, adding a blank line before a part only where needed."""
    out = head
    for part in messages:
        if out and not out.endswith("\n"):
            out += "\n"
        if out and not out.endswith("\n\n") and not part.startswith("\n"):
            out += "\n"
        out += part
    return out


def with_format_marker(preamble: str) -> str:
    """Record the format version in front matter (added once; an existing one is kept)."""
    key = "domarkx-format:"
    lines = preamble.splitlines(keepends=True)
    if lines and lines[0].lstrip("\ufeff").rstrip() == "---":
        if any(line.startswith(key) for line in lines[1:]):
            return preamble
        newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
        return lines[0] + f"{key} {FORMAT_VERSION}{newline}" + "".join(lines[1:])
    return f"---\n{key} {FORMAT_VERSION}\n---\n\n" + preamble
