"""A model's reply, and a user's message, made fit to store before anything runs.

Both come from strangers: a server may send a tool-call id with a newline or a
backtick in it (it would break the fence an export writes it in, and the
instance could never be committed again), two calls with one id, a lone
surrogate (``\\ud800``, which UTF-8 cannot encode, so the store cannot hold it).
:func:`accept` is the one place a reply is checked: it runs before the reply's
tool calls, so what runs is exactly what is recorded, and every repair is noted
in the assistant message's metadata (``repaired``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from domarkx.data.models import ToolCallRecord
from domarkx.errors import UsageError

if TYPE_CHECKING:
    from domarkx.llm.base import Completion

MAX_ID = 128
"""Longest tool-call id kept; real ones are a few dozen characters."""
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_.:-]")
"""What a tool-call id may not hold: it is written in a fence's info string."""
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")
"""What model APIs refuse in a function name (``^[a-zA-Z0-9_-]{1,64}$``)."""
_SURROGATE = re.compile(r"[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


@dataclass
class Accepted:
    """A reply as it will be stored: text, tool calls, metadata, and what had to change."""

    content: str
    calls: list[ToolCallRecord]
    metadata: dict[str, Any]
    repairs: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    """Calls not to run, by id, with the error result the model reads instead (a name that had to change)."""


def accept(completion: Completion, model: str) -> Accepted:
    """The reply with unstorable text replaced and unsafe ids and names normalised.

    ``model`` is the ``PROVIDER:MODEL`` label recorded in the metadata.
    """
    repairs: list[str] = []
    content = scrub(completion.content, "the text", repairs)
    taken: set[str] = set()
    calls: list[ToolCallRecord] = []
    refused: dict[str, str] = {}
    for number, call in enumerate(completion.tool_calls, start=1):
        record = ToolCallRecord(
            id=_call_id(call.id, number, taken, repairs),
            name=_tool_name(call.name, repairs),
            arguments=scrub(call.arguments, "tool-call arguments", repairs),
        )
        calls.append(record)
        if record.name != call.name.strip():  # never guess which tool a mangled name meant
            refused[record.id] = (
                f"error: {_shown(call.name)} is not a valid tool name, so the call was not run;"
                " call one of the offered tools by its exact name"
            )
    metadata = scrub({**completion.metadata(), "model": model}, "the reply's metadata", repairs)
    if repairs:
        metadata["repaired"] = repairs
    return Accepted(content, calls, metadata, repairs, refused)


def printable(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD: what a terminal, a file or the store can take."""
    return _SURROGATE.sub(REPLACEMENT, text)


def scrub(value: Any, where: str, repairs: list[str]) -> Any:
    """``value`` with every lone surrogate in its strings (keys included) replaced by U+FFFD."""
    if isinstance(value, str):
        if _SURROGATE.search(value) is None:
            return value
        note = f"{where}: text that is not valid Unicode replaced by U+FFFD"
        if note not in repairs:
            repairs.append(note)
        return _SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, list):
        return [scrub(item, where, repairs) for item in value]
    if isinstance(value, dict):
        return {scrub(key, where, repairs): scrub(item, where, repairs) for key, item in value.items()}
    return value


def _call_id(raw: str, number: int, taken: set[str], repairs: list[str]) -> str:
    cleaned = _UNSAFE_ID.sub("_", raw)[:MAX_ID]
    if cleaned != raw and raw:
        repairs.append(f"tool-call id {_shown(raw)}: characters an export cannot hold replaced")
    if not cleaned:
        cleaned = f"call_{number}"
    unique, n = cleaned, 1
    while unique in taken:
        n += 1
        unique = f"{cleaned}_{n}"
    if unique != cleaned:
        repairs.append(f"tool-call id {_shown(cleaned)} repeated in one reply: renamed {unique}")
    taken.add(unique)
    return unique


def _tool_name(raw: str, repairs: list[str]) -> str:
    """A name models and fences accept; whitespace around it is dropped (some servers add a newline)."""
    cleaned = _UNSAFE_NAME.sub("_", raw.strip())[:64] or "unnamed"
    if cleaned != raw:
        repairs.append(f"tool name {_shown(raw)}: normalised to {cleaned}")
    return cleaned


def _shown(text: str, limit: int = 40) -> str:
    """A stranger's string quoted safely for a note: escaped, surrogates replaced, cut short."""
    quoted = ascii(_SURROGATE.sub(REPLACEMENT, text))
    return quoted if len(quoted) <= limit else quoted[: limit - 1] + "…"


def check_text(text: str, what: str = "the message") -> None:
    """Refuse text the store cannot hold: bytes that were not UTF-8, or a lone surrogate.

    Arguments and standard input that are not UTF-8 reach Python as lone
    surrogates (``surrogateescape``); the byte they stand for is named.
    """
    found = _SURROGATE.search(text)
    if found is None:
        return
    code = ord(found.group())
    where = f"at character {found.start() + 1}"
    if 0xDC80 <= code <= 0xDCFF:
        raise UsageError(
            f"{what} is not UTF-8 text (byte 0x{code - 0xDC00:02x} {where})",
            hint="write it in UTF-8 (e.g. iconv -f latin1 -t utf-8), then send again",
        )
    raise UsageError(f"{what} holds a lone surrogate U+{code:04X} {where}", hint="send valid Unicode text")
