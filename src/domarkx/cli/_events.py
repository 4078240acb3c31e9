"""How ``log`` shows what ``exec`` and ``cp`` did between messages (:mod:`domarkx.data.events`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from domarkx import ids

if TYPE_CHECKING:
    from domarkx.data.events import EventRow

T = TypeVar("T")
WIDTH = 72


def with_events(items: Sequence[T], events: Sequence[EventRow], render: Callable[[EventRow], T]) -> list[T]:
    """One item per message (in order) with each event rendered where it happened: after message ``messages - 1``."""
    merged: list[T] = []
    pending = list(events)
    for index, item in enumerate(items):
        while pending and pending[0].messages <= index:
            merged.append(render(pending.pop(0)))
        merged.append(item)
    merged.extend(render(event) for event in pending)
    return merged


def summary(event: EventRow) -> str:
    """One line: where, what (the code, or what was copied), and how a command ended."""
    detail = event.detail
    if event.kind == "cp":
        text = f"{detail.get('source', '?')} → {detail.get('path', '?')}"
    else:
        text = str(detail.get("code", ""))
        if detail.get("timed_out"):
            text += " (timed out)"
        elif detail.get("exit_code"):
            text += f" (exit {detail['exit_code']})"
        elif detail.get("ok") is False:
            text += " (failed)"
        if detail.get("stdin_bytes") is not None:
            text += f" < {detail['stdin_bytes']} bytes"
    line = " ".join(f"[{event.resource}] {text}".split())
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


def cells(event: EventRow) -> list[str]:
    """A ``log`` table row: ``·`` for the index (it is no message), the kind as the role."""
    return ["·", event.kind, ids.short(event.version), summary(event)]


def as_json(event: EventRow) -> dict[str, Any]:
    return {
        "after": event.messages - 1,
        "role": event.kind,
        "resource": event.resource,
        "summary": summary(event),
        "workspace_version": event.version,
        "previous_version": event.before,
        "detail": event.detail,
        "created": event.created,
    }
