"""The turn loop (seed 003 §3.2): user → model → tools → commit → model → … → answer.

Each step is stored as soon as it completes (the assistant message, its tool
results and the workspace version they produced, in one transaction), so a
failed or killed turn keeps everything up to the last finished step and the
instance stays usable. What a person stops on purpose is recorded too: Ctrl-C
while the reply streams keeps the text they saw; Ctrl-C during a tool call keeps
the call, its output so far and an "interrupted" result, and commits what it
changed. A turn that ends before the model answered leaves the conversation
*pending* (its last message is the user's, or tool results); :meth:`SessionManager.answer`
picks it up (``domarkx continue``).
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domarkx.data.models import ConversationMessage, SessionInstance, SessionSnapshot, ToolCallRecord
from domarkx.errors import UsageError
from domarkx.parsing.fences import format_info
from domarkx.parsing.render import fence
from domarkx.session._reply import accept, check_text, printable
from domarkx.session.instance import InstanceManager
from domarkx.workspace.plugin import streaming_to

if TYPE_CHECKING:
    from domarkx.llm.base import ChatMessage, Completion, Provider, ToolDefinition
    from domarkx.workspace.manager import Workspace

INTERRUPTED = "[interrupted: the user stopped this call]"
NOT_RUN = "error: not run: the turn was interrupted before this call"
DECLINED = "error: the user declined this call"
PARTIAL_KEPT = 20_000
"""Characters of a call's streamed output kept when it is interrupted (its head and tail)."""
OUTPUT_LABEL = "Output:"
"""What precedes a code block's recorded output in the text a model reads."""
SETTINGS = ("model", "approve", "max_steps")
DEFAULT_MAX_STEPS = 10
"""Model calls in one turn when neither the command nor the instance says otherwise."""
"""What an instance remembers for its next turn (docs/sessions.md)."""
_STOPPING: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Signals that stop a turn (the CLI turns SIGTERM and SIGHUP into Ctrl-C's KeyboardInterrupt)."""


class TurnObserver:
    """What a turn tells its watcher as it happens; the CLI (and a UI) subclass it.

    Every method has a do-nothing default, so a watcher overrides only what it shows.
    """

    def step(self, number: int) -> None:
        """Model call ``number`` (1, 2, …) of the turn begins."""

    def text(self, delta: str) -> None:
        """A piece of the reply's text, as it streams."""

    def call(self, call: ToolCallRecord) -> None:
        """A tool call is about to run (or to be asked about)."""

    def approve(self, call: ToolCallRecord) -> bool:
        """Whether ``call`` may run; a refusal becomes an error result the model reads."""
        return True

    def output(self, chunk: str) -> None:
        """Output of the running call, as the tool produces it (tools that stream only)."""

    def result(self, call: ToolCallRecord, result: ConversationMessage) -> None:
        """The call finished (or failed, was declined, interrupted)."""

    def notice(self, message: str) -> None:
        """Something the person should know that is not an error (a repaired reply)."""


@dataclass
class TurnResult:
    """What one turn added, and why it stopped."""

    messages: list[ConversationMessage]
    """What the turn stored: the user message it answered (for ``send``), then each step's messages."""
    steps: int
    hit_max_steps: bool


class SessionManager:
    """Runs conversations of instances against a model and their workspace."""

    def __init__(self, instances: InstanceManager) -> None:
        self.instances = instances
        self.workspaces = instances.workspaces
        self._snapshots: dict[str, SessionSnapshot] = {}

    def snapshot(self, instance: SessionInstance) -> SessionSnapshot:
        """The instance's snapshot, read once per manager.

        Snapshots are immutable, and loading a long one (every message validated)
        took more than half of a turn's own time in a 2,000-message session.
        """
        found = self._snapshots.get(instance.snapshot_id)
        if found is None:
            found = self._snapshots[instance.snapshot_id] = self.instances.snapshots.get(instance.snapshot_id)
        return found

    # -- models and what an instance remembers -------------------------------------------

    def provider_for(self, instance: SessionInstance, spec: str | None) -> Provider:
        """The model for the next turn: ``spec`` (``--model``), else the one the instance remembers,
        else session-config ``model``, else ``$DOMARKX_MODEL``."""
        return provider_for_snapshot(self.snapshot(instance), spec or self.settings(instance).get("model"))

    def settings(self, instance: SessionInstance) -> dict[str, Any]:
        return self.instances.settings(instance.id)

    def remember(self, instance: SessionInstance, **settings: Any) -> None:
        """Keep the given settings (``None`` values are left as they were) for the instance's next turns."""
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise ValueError(f"not an instance setting: {', '.join(sorted(unknown))}")
        steps = settings.get("max_steps")
        if steps is not None and steps < 1:
            raise UsageError(
                "--max-steps must be at least 1", hint="it counts model calls in one turn; the default is 10"
            )
        current = self.settings(instance)
        wanted = {**current, **{k: v for k, v in settings.items() if v is not None}}
        if wanted != current:
            self.instances.set_settings(instance.id, wanted)

    def approval(self, instance: SessionInstance) -> bool:
        """Whether calls are asked about: the remembered choice, else session-config ``approve``."""
        remembered = self.settings(instance).get("approve")
        if remembered is not None:
            return bool(remembered)
        return self.snapshot(instance).session_config.get("approve") is True

    def prepare(
        self, instance: SessionInstance, model: str | None, approve: bool | None, max_steps: int | None
    ) -> tuple[Provider, int, bool]:
        """The model, step limit and approval for the next turn, remembered for the ones after it.

        Every front end (the CLI's send/chat/run/edit, the web UI) starts a turn
        this way, so a choice made in one is the default in the others.
        """
        provider = self.provider_for(instance, model)
        self.remember(instance, model=model, approve=approve, max_steps=max_steps)
        steps = max_steps or int(self.settings(instance).get("max_steps") or DEFAULT_MAX_STEPS)
        return provider, steps, self.approval(instance)

    # -- turns -----------------------------------------------------------------------------

    def send(
        self,
        instance: SessionInstance,
        text: str,
        provider: Provider,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        observer: TurnObserver | None = None,
    ) -> TurnResult:
        """Add a user message and let the model work until it answers without tool calls.

        Sending again the text of a user message that is still unanswered (the
        last turn failed) answers that message instead of adding a copy.
        """
        check_text(text)
        with self._ready(instance, max_steps):
            start = len(instance.messages)
            last = instance.messages[-1] if instance.messages else None
            if last is not None and last.role == "user" and last.content == text:
                start -= 1
                (observer or TurnObserver()).notice("answering your earlier message, which was not answered yet")
            else:
                instance.messages.append(ConversationMessage(role="user", content=text))
                self.instances.save_messages(instance, start)
            return self._loop(instance, start, provider, max_steps, observer or TurnObserver())

    def answer(
        self,
        instance: SessionInstance,
        provider: Provider,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        observer: TurnObserver | None = None,
    ) -> TurnResult:
        """Let the model answer a pending conversation (``domarkx continue``)."""
        with self._ready(instance, max_steps):
            if not pending(instance):
                last = instance.messages[-1].role if instance.messages else None
                raise UsageError(
                    "nothing to answer: "
                    + (f"the last message is the {last}'s" if last else "the conversation is empty"),
                    hint="send a new message with `domarkx send INSTANCE TEXT`",
                )
            return self._loop(instance, len(instance.messages), provider, max_steps, observer or TurnObserver())

    @contextlib.contextmanager
    def _ready(self, instance: SessionInstance, max_steps: int) -> Iterator[None]:
        if max_steps < 1:
            raise UsageError("--max-steps must be at least 1")
        with self.instances.using(instance):  # re-read: another process may have added to it
            if instance.status != "running":
                raise UsageError(
                    f"instance {instance.name or instance.id[:12]} is stopped",
                    hint="start it with `domarkx instances start`",
                )
            yield

    def _loop(
        self, instance: SessionInstance, start: int, provider: Provider, max_steps: int, observer: TurnObserver
    ) -> TurnResult:
        workspace = self.workspaces.open(instance.workspace_id)
        extra = {t.spec.name: t for t in self.instances.setup_tools(self.snapshot(instance), workspace)}
        specs = self.workspaces.tools(workspace) + [t.spec for t in extra.values()]
        tools = [_definition(t) for t in specs]
        for number in range(1, max_steps + 1):
            observer.step(number)
            if not self._step(instance, workspace, extra, tools, provider, observer):
                return TurnResult(instance.messages[start:], number, hit_max_steps=False)
        return TurnResult(instance.messages[start:], max_steps, hit_max_steps=True)

    def _step(
        self,
        instance: SessionInstance,
        workspace: Workspace,
        extra: dict[str, Any],
        tools: list[ToolDefinition],
        provider: Provider,
        observer: TurnObserver,
    ) -> bool:
        """One model call and its tool calls, stored; whether the model asked for tools."""
        completion = self._complete(instance, workspace, tools, provider, observer)
        reply = accept(completion, f"{provider.name}:{completion.model or provider.model}")
        for note in reply.repairs:
            observer.notice(f"the model's reply was repaired: {note}")
        assistant = ConversationMessage(
            role="assistant", content=reply.content, tool_calls=reply.calls, metadata=reply.metadata
        )
        results, stopped = self._run_calls(workspace, extra, reply.calls, reply.refused, observer)
        with _interrupts_deferred():
            self._store(instance, workspace, assistant, results)
        if stopped is not None:
            raise stopped
        return bool(reply.calls)

    def _complete(
        self,
        instance: SessionInstance,
        workspace: Workspace,
        tools: list[ToolDefinition],
        provider: Provider,
        observer: TurnObserver,
    ) -> Completion:
        """The model's reply; stopped half-way (Ctrl-C), the text the person saw is stored, marked interrupted."""
        shown: list[str] = []

        def on_text(delta: str) -> None:
            shown.append(delta)
            observer.text(delta)

        try:
            return provider.complete(to_chat(instance.messages), tools, on_text=on_text)
        except KeyboardInterrupt:
            if shown:
                partial = ConversationMessage(
                    role="assistant",
                    content=printable("".join(shown)),
                    metadata={"model": printable(f"{provider.name}:{provider.model}"), "interrupted": True},
                )
                with _interrupts_deferred():
                    self._store(instance, workspace, partial, [])
            raise

    def _run_calls(
        self,
        workspace: Workspace,
        extra: dict[str, Any],
        calls: list[ToolCallRecord],
        refused: dict[str, str],
        observer: TurnObserver,
    ) -> tuple[list[ConversationMessage], BaseException | None]:
        """Each call's result, in order; and what stopped them, if anything did (Ctrl-C, a closed pipe).

        Every call gets a result, so the conversation stays one a model accepts
        and nothing that ran goes unrecorded: the call that was running is
        marked interrupted (with its output so far), the ones after it as not run.
        """
        results: list[ConversationMessage] = []
        stopped: BaseException | None = None
        for call in calls:
            if stopped is not None:
                results.append(_result(call, False, NOT_RUN))
                continue
            partial = _Partial(observer.output)
            try:
                observer.call(call)
                if call.id in refused:
                    ok, content = False, refused[call.id]
                elif observer.approve(call):
                    with streaming_to(partial):
                        ok, content = self._call(workspace, extra, call)
                else:
                    ok, content = False, DECLINED
            except BaseException as exc:  # recorded here, raised again once the step is stored
                stopped = exc
                why = INTERRUPTED if isinstance(exc, KeyboardInterrupt) else f"[interrupted: {type(exc).__name__}]"
                ok, content = False, partial.text() + why
            results.append(_result(call, ok, content))
            try:
                observer.result(call, results[-1])
            except BaseException as exc:  # the result is recorded whatever happens while it is shown
                stopped = stopped or exc
        return results, stopped

    def _call(self, workspace: Workspace, extra: dict[str, Any], call: ToolCallRecord) -> tuple[bool, str]:
        if call.name in extra:
            return _call_setup_tool(extra[call.name], call.arguments)
        outcome = self.workspaces.call(workspace, call.name, call.arguments)
        return outcome.ok, outcome.text

    def _store(
        self,
        instance: SessionInstance,
        workspace: Workspace,
        assistant: ConversationMessage,
        results: list[ConversationMessage],
    ) -> None:
        """Commit the workspace, link the assistant message to it, store the step in one transaction."""
        version = self.workspaces.commit(workspace).id
        assistant.workspace_version = version
        instance.head_version = version
        step_start = len(instance.messages)
        instance.messages += [assistant, *results]
        self.instances.save_messages(instance, step_start)


def provider_for_snapshot(snapshot: SessionSnapshot, spec: str | None) -> Provider:
    """The model ``spec`` names (else session-config ``model``, else ``$DOMARKX_MODEL``) for a snapshot."""
    from domarkx import trust
    from domarkx.llm.base import get_provider

    return get_provider(spec, snapshot.session_config, trust=trust.of(snapshot))


def pending(instance: SessionInstance) -> bool:
    """Whether the model owes an answer: the conversation ends with a user message or tool results."""
    return bool(instance.messages) and instance.messages[-1].role in ("user", "tool")


class _Partial:
    """A running call's streamed output: passed on to the watcher, its head and tail kept for the record."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self.sink = sink
        self.head = ""
        self.tail = ""
        self.total = 0

    def __call__(self, chunk: str) -> None:
        self.sink(chunk)
        half = PARTIAL_KEPT // 2
        self.total += len(chunk)
        room = half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail = (self.tail + chunk)[-half:]

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        kept = self.head + (f"\n[… {dropped} characters cut …]\n" if dropped > 0 else "") + self.tail
        return kept if not kept or kept.endswith("\n") else kept + "\n"


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (or a signal the CLI turned into one) that arrives while a step is stored.

    A second Ctrl-C must not leave a call that ran without its record. Only
    signals handled in Python are held; the held one is handled afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: dict[int, Any] = {}
    caught: list[int] = []
    for number in _STOPPING:
        handler = signal.getsignal(number)
        if callable(handler):
            held[number] = signal.signal(number, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
    if caught:
        held[caught[0]](caught[0], None)


def _result(call: ToolCallRecord, ok: bool, content: str) -> ConversationMessage:
    return ConversationMessage(
        role="tool",
        content=printable(content),
        tool_call_id=call.id,
        tool_ok=ok,
        metadata={"name": call.name},
    )


def _call_setup_tool(tool: Any, arguments: dict[str, Any]) -> tuple[bool, str]:
    """Run a setup-script tool; its failures become error results, like workspace tools'."""
    from domarkx.workspace.manager import render
    from domarkx.workspace.plugin import ToolError

    try:
        return True, render(tool.call(**arguments))
    except ToolError as exc:
        return False, f"error: {exc.message}"
    except Exception as exc:  # a document's own tool code: report, never crash the turn
        return False, f"error: {type(exc).__name__}: {exc}"


def _definition(spec: Any) -> ToolDefinition:
    from domarkx.llm.base import ToolDefinition

    return ToolDefinition(name=spec.name, description=spec.description, parameters=spec.parameters)


def to_chat(messages: list[ConversationMessage]) -> list[ChatMessage]:
    """The conversation as the model sees it.

    Code blocks and their recorded outputs become part of the message text; tool
    calls are kept only when every one of them has a result (providers reject
    dangling calls), otherwise they are described in the text.
    """
    from domarkx.llm.base import ChatMessage, ToolCall

    answered = {m.tool_call_id for m in messages if m.role == "tool"}
    complete = {c.id for m in messages if all(x.id in answered for x in m.tool_calls) for c in m.tool_calls}
    chat: list[ChatMessage] = []
    for message in messages:
        content = with_code(message)
        if message.role == "tool":
            if message.tool_call_id in complete:
                chat.append(ChatMessage(role="tool", content=content, tool_call_id=message.tool_call_id))
        elif message.tool_calls and all(c.id in complete for c in message.tool_calls):
            calls = [ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in message.tool_calls]
            chat.append(ChatMessage(role="assistant", content=content, tool_calls=calls))
        elif message.tool_calls:
            described = "\n".join(f"(called {c.name} with {c.arguments})" for c in message.tool_calls)
            chat.append(ChatMessage(role="assistant", content=f"{content}\n{described}".strip()))
        else:
            chat.append(ChatMessage(role=message.role, content=content))  # type: ignore[arg-type]
    return chat


def with_code(message: ConversationMessage) -> str:
    """A message's text as a model reads it: prose, then each code block and the output it recorded."""
    parts = [message.content] if message.content else []
    outputs = {o.block: o for o in message.outputs}
    for index, block in enumerate(message.code):
        if "output" in block.flags:
            continue
        parts.append(fence(block.text, format_info(block.lang, {}, [])).rstrip("\n"))
        if index in outputs:
            parts.append(f"{OUTPUT_LABEL}\n" + fence(outputs[index].text, "text").rstrip("\n"))
    return "\n\n".join(parts)


_OUTPUT = re.compile(rf"\n*^{OUTPUT_LABEL}\n(`{{3,}})text\n.*?^\1$", re.DOTALL | re.MULTILINE)


def without_outputs(text: str) -> str:
    """:func:`with_code` text with the recorded outputs taken out: what the model itself wrote.

    The fence around an output is longer than any backtick run inside it, so
    the first line that is exactly that fence closes it.
    """
    return _OUTPUT.sub("", text)
