"""The turn loop (seed 003 §3.2): user → model → tools → commit → model → … → answer.

Each step is stored as soon as it completes (the assistant message, its tool
results and the workspace version they produced, in one transaction), so an
interrupted or failed turn keeps everything up to the last finished step and the
instance stays usable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domarkx.data.models import ConversationMessage, SessionInstance, SessionSnapshot, ToolCallRecord
from domarkx.errors import UsageError
from domarkx.parsing.fences import format_info
from domarkx.parsing.render import fence
from domarkx.session.instance import InstanceManager

if TYPE_CHECKING:
    from domarkx.llm.base import ChatMessage, Provider, ToolDefinition


@dataclass
class TurnResult:
    """What one ``send`` added, and why it stopped."""

    messages: list[ConversationMessage]
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

    def provider_for(self, instance: SessionInstance, spec: str | None) -> Provider:
        from domarkx import trust
        from domarkx.llm.base import get_provider

        snapshot = self.snapshot(instance)
        return get_provider(spec, snapshot.session_config, trust=trust.of(snapshot))

    def send(
        self,
        instance: SessionInstance,
        text: str,
        provider: Provider,
        *,
        max_steps: int = 10,
        on_text: Callable[[str], None] | None = None,
        on_tool: Callable[[ToolCallRecord, ConversationMessage], None] | None = None,
    ) -> TurnResult:
        """Add a user message and let the model work until it answers without tool calls."""
        if max_steps < 1:
            raise UsageError("--max-steps must be at least 1")
        with self.instances.using(instance):  # re-read: another process may have added to it
            if instance.status != "running":
                raise UsageError(
                    f"instance {instance.name or instance.id[:12]} is stopped",
                    hint="start it with `domarkx instances start`",
                )
            return self._turn(instance, text, provider, max_steps, on_text, on_tool)

    def _turn(
        self,
        instance: SessionInstance,
        text: str,
        provider: Provider,
        max_steps: int,
        on_text: Callable[[str], None] | None,
        on_tool: Callable[[ToolCallRecord, ConversationMessage], None] | None,
    ) -> TurnResult:
        start = len(instance.messages)
        instance.messages.append(ConversationMessage(role="user", content=text))
        self.instances.save_messages(instance, start)
        workspace = self.workspaces.open(instance.workspace_id)
        extra = {t.spec.name: t for t in self.instances.setup_tools(self.snapshot(instance), workspace)}
        specs = self.workspaces.tools(workspace) + [t.spec for t in extra.values()]
        tools = [_definition(t) for t in specs]
        steps = 0
        while steps < max_steps:
            steps += 1
            completion = provider.complete(to_chat(instance.messages), tools, on_text=on_text)
            calls = [ToolCallRecord(id=c.id, name=c.name, arguments=c.arguments) for c in completion.tool_calls]
            metadata = completion.metadata()
            metadata["model"] = f"{provider.name}:{completion.model or provider.model}"
            assistant = ConversationMessage(
                role="assistant", content=completion.content, tool_calls=calls, metadata=metadata
            )
            results = []
            for call in calls:
                if call.name in extra:
                    ok, content = _call_setup_tool(extra[call.name], call.arguments)
                else:
                    outcome = self.workspaces.call(workspace, call.name, call.arguments)
                    ok, content = outcome.ok, outcome.text
                result = ConversationMessage(
                    role="tool", content=content, tool_call_id=call.id, tool_ok=ok, metadata={"name": call.name}
                )
                results.append(result)
                if on_tool is not None:
                    on_tool(call, result)
            version = self.workspaces.commit(workspace).id
            assistant.workspace_version = version
            instance.head_version = version
            step_start = len(instance.messages)
            instance.messages += [assistant, *results]
            self.instances.save_messages(instance, step_start)
            if not calls:
                return TurnResult(instance.messages[start:], steps, hit_max_steps=False)
        return TurnResult(instance.messages[start:], steps, hit_max_steps=True)


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
        content = _with_code(message)
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


def _with_code(message: ConversationMessage) -> str:
    parts = [message.content] if message.content else []
    outputs = {o.block: o for o in message.outputs}
    for index, block in enumerate(message.code):
        if "output" in block.flags:
            continue
        parts.append(fence(block.text, format_info(block.lang, {}, [])).rstrip("\n"))
        if index in outputs:
            parts.append("Output:\n" + fence(outputs[index].text, "text").rstrip("\n"))
    return "\n\n".join(parts)
