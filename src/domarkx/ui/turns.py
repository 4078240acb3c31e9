"""Turns the browser started: each runs in its own thread, and its events wait for whoever watches.

A turn is the same ``SessionManager`` turn ``domarkx send`` runs; what it
tells its observer (text as it streams, a call about to run, its output, its
result) becomes numbered events. The page reads them as server-sent events
and may reconnect (``Last-Event-ID``) without losing any. When approval is on,
a call waits until the page answers yes, no or always (or the watcher leaves,
which counts as no: nothing runs unseen).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domarkx.data.models import ConversationMessage, ToolCallRecord
from domarkx.data.store import Store
from domarkx.errors import DomarkxError, ReferenceNotFound, UsageError
from domarkx.session.manager import TurnObserver
from domarkx.workspace.plugin import progress_to

DECISIONS = ("yes", "no", "always")
WATCH_TIMEOUT = 15.0
"""How long one read of the event stream waits before sending a keep-alive."""
UNWATCHED = 120.0
"""An approval nobody is watching for this long is refused."""
KEPT = 50
"""Finished turns whose events are kept for a page that reconnects late."""


@dataclass
class Event:
    number: int
    kind: str
    data: dict[str, Any]


@dataclass
class Turn:
    """One running (or finished) turn and everything it said so far."""

    id: str
    instance_id: str
    approve: bool
    events: list[Event] = field(default_factory=list)
    done: bool = False
    always: bool = False
    waiting: dict[str, str | None] = field(default_factory=dict)
    """Calls waiting for a decision: call id → the decision once given."""
    watched: float = field(default_factory=time.monotonic)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def emit(self, kind: str, **data: Any) -> None:
        with self.lock:
            self.events.append(Event(len(self.events) + 1, kind, data))
            if kind in ("done", "failed"):
                self.done = True
            self.lock.notify_all()

    def read(self, after: int, timeout: float = WATCH_TIMEOUT) -> tuple[list[Event], bool]:
        """Events after number ``after`` (waiting up to ``timeout`` for one), and whether the turn is over."""
        with self.lock:
            self.watched = time.monotonic()
            self.lock.wait_for(lambda: len(self.events) > after or self.done, timeout)
            return self.events[after:], self.done and len(self.events) >= after

    def decide(self, call_id: str, decision: str) -> None:
        if decision not in DECISIONS:
            raise UsageError(f"decision must be one of {', '.join(DECISIONS)}")
        with self.lock:
            if call_id not in self.waiting or self.waiting[call_id] is not None:
                raise UsageError(f"no call {call_id!r} is waiting for a decision")
            self.waiting[call_id] = decision
            self.lock.notify_all()

    def ask(self, call: ToolCallRecord) -> bool:
        """Block the turn until the page decides on ``call``."""
        if not self.approve or self.always:
            return True
        with self.lock:
            self.waiting[call.id] = None
        self.emit("approval", call=_call(call))
        with self.lock:
            while self.waiting[call.id] is None:
                if time.monotonic() - self.watched > UNWATCHED:
                    self.waiting[call.id] = "no"
                    break
                self.lock.wait(1.0)
            decision = self.waiting.pop(call.id)
        self.always = decision == "always"
        self.emit("decided", call=call.id, decision=decision)
        return decision != "no"


class Observer(TurnObserver):
    """What the turn loop tells its watcher, as events of a :class:`Turn`."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn

    def step(self, number: int) -> None:
        self.turn.emit("step", number=number)

    def text(self, delta: str) -> None:
        self.turn.emit("text", delta=delta)

    def call(self, call: ToolCallRecord) -> None:
        self.turn.emit("call", call=_call(call))

    def approve(self, call: ToolCallRecord) -> bool:
        return self.turn.ask(call)

    def output(self, chunk: str) -> None:
        self.turn.emit("output", text=chunk)

    def result(self, call: ToolCallRecord, result: ConversationMessage) -> None:
        self.turn.emit("result", call=call.id, ok=result.tool_ok, text=result.content)

    def notice(self, message: str) -> None:
        self.turn.emit("notice", message=message)


def _call(call: ToolCallRecord) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": json.dumps(call.arguments, indent=2, ensure_ascii=False)}


class Turns:
    """The turns of one server: at most one running per instance."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._turns: dict[str, Turn] = {}
        self._lock = threading.Lock()

    def get(self, turn_id: str) -> Turn:
        with self._lock:
            turn = self._turns.get(turn_id)
        if turn is None:
            raise ReferenceNotFound(f"no turn {turn_id!r}", hint="it ended before this server restarted")
        return turn

    def start(self, instance_id: str, text: str | None, *, model: str | None, approve: bool | None) -> Turn:
        """Start a turn in a thread (the reply arrives as events).

        ``text`` None answers the pending conversation (``domarkx continue``);
        ``model`` and ``approve`` None: what the instance remembers, as for ``send``.
        """
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise UsageError("the message is empty")
        with self._lock:
            if any(t.instance_id == instance_id and not t.done for t in self._turns.values()):
                raise UsageError("a turn of this instance is still running", hint="wait for it to finish")
            finished = [t.id for t in self._turns.values() if t.done]
            for old in finished[: max(0, len(finished) - KEPT)]:  # oldest first: dicts keep insertion order
                del self._turns[old]
            turn = Turn(id=secrets.token_hex(8), instance_id=instance_id, approve=bool(approve))
            self._turns[turn.id] = turn
        thread = threading.Thread(
            target=self._run, args=(turn, text, model, approve), name=f"turn-{turn.id}", daemon=True
        )
        thread.start()
        return turn

    def _run(self, turn: Turn, text: str | None, model: str | None, approve: bool | None) -> None:
        from domarkx.session.instance import InstanceManager
        from domarkx.session.manager import SessionManager

        try:
            with Store(self.home) as store:
                instances = InstanceManager(store)
                sessions = SessionManager(instances)
                instance = instances.get(turn.instance_id)
                provider, steps, turn.approve = sessions.prepare(instance, model or None, approve, None)
                observer = Observer(turn)
                with progress_to(lambda message: turn.emit("progress", message=message)):
                    if text is None:
                        result = sessions.answer(instance, provider, max_steps=steps, observer=observer)
                    else:
                        result = sessions.send(instance, text, provider, max_steps=steps, observer=observer)
            turn.emit("done", messages=len(instance.messages), hit_max_steps=result.hit_max_steps)
        except DomarkxError as exc:
            turn.emit("failed", message=exc.message, hint=exc.hint)
        except Exception as exc:  # a bug must reach the page as one line, and end the turn
            turn.emit("failed", message=f"internal error: {type(exc).__name__}: {exc}", hint=None)
