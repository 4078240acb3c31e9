"""Running and recording the calls an MCP client makes, exactly as the model loop records its own.

Each call becomes an assistant message holding the tool call (metadata:
``mcp_client``, the client's name and version) and a tool message holding the
result; the assistant message links to the workspace version committed after
the call. So a session driven over MCP exports, forks, resets and verifies
like one driven by ``domarkx send``.

Durability: a workspace tool call is stored *before* it runs (write-ahead).
If domarkx dies mid-call, the next call finds the unanswered call, commits
the workspace as the dead call left it and records the call as interrupted,
so nothing it did is lost or misattributed. A call whose client goes away
(cancelled, disconnected) runs to its end (bounded by the tool's own time-out:
plugins have no way to stop a running tool) and its result is recorded with
``interrupted`` in the tool message's metadata.

Every method runs in one thread (see ``server``): SQLite connections stay in
the thread that opened them, and calls are serialised. Across processes the
instance lock serialises them (``InstanceManager.using``).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domarkx.data.models import ConversationMessage, ToolCallRecord
from domarkx.errors import DomarkxError
from domarkx.mcp import _tools

if TYPE_CHECKING:
    from domarkx.data.models import SessionInstance
    from domarkx.session.instance import InstanceManager
    from domarkx.workspace.plugin import ToolSpec

MAX_ARGUMENT_BYTES = 1_000_000
"""The most a call's arguments may weigh as JSON; a larger call is refused before it runs or is stored."""
CLIENT_KEY = "mcp_client"
"""Metadata key of the assistant messages a client's calls make: ``{"name": …, "version": …}``."""
GONE = "the client went away before it received this result"
DIED = "domarkx stopped before this call finished"


@dataclass(frozen=True)
class Answer:
    """What the client is sent: the result text, and whether it is an error."""

    text: str
    ok: bool


class Recorder:
    """Runs the calls of MCP clients on one instance and records them in its conversation."""

    def __init__(self, instances: InstanceManager, instance_id: str) -> None:
        self.instances = instances
        self.workspaces = instances.workspaces
        self.instance_id = instance_id
        self.session = _tools.SessionTools(instances)
        self._workspace_id: str | None = None

    def tools(self) -> list[ToolSpec]:
        """The workspace's tools, then the session tools; a name both use is an error."""
        instance = self.instances.get(self.instance_id)
        workspace = self.workspaces.open(instance.workspace_id)
        own = self.workspaces.tools(workspace)
        clash = sorted({t.name for t in own} & set(_tools.MODELS))
        if clash:
            raise DomarkxError(
                f"workspace tools {', '.join(clash)} have the names of session tools",
                hint="give the resource a name (workspace-config `name:`) so its tools are prefixed",
            )
        return own + _tools.specs()

    def call(self, name: str, arguments: dict[str, Any], client: dict[str, str], gone: threading.Event) -> Answer:
        """Run and record one call; ``gone`` is set when the client stops waiting for it.

        A call refused at the door (too large, not text, no such tool) never
        reaches the workspace and is not recorded.
        """
        problem = _oversized(arguments)
        if problem:
            return Answer(f"error: refused: {problem}", False)
        try:
            with self.instances.using(self.instances.get(self.instance_id)) as instance:
                if instance.status != "running":
                    return Answer("error: the instance is stopped (`domarkx instances start` it)", False)
                self.recover(instance)
                known = {t.name for t in self.workspaces.tools(self.workspaces.open(instance.workspace_id))}
                if name not in known | set(_tools.MODELS):
                    return Answer(f"error: refused: no tool named {json.dumps(name)[:80]}", False)
                return self._record(instance, name, arguments, client, gone)
        except DomarkxError as exc:
            return Answer(f"error: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), False)

    def _record(
        self,
        instance: SessionInstance,
        name: str,
        arguments: dict[str, Any],
        client: dict[str, str],
        gone: threading.Event,
    ) -> Answer:
        self._follow(instance.workspace_id)
        call = ToolCallRecord(id=f"mcp_{secrets.token_hex(8)}", name=name, arguments=arguments)
        assistant = ConversationMessage(role="assistant", tool_calls=[call], metadata={CLIENT_KEY: client})
        if name in _tools.MODELS:  # no effect on the workspace: stored with its result
            ok, text = self.session.run(instance, name, arguments, len(instance.messages))
            instance.messages.append(assistant)
        else:
            instance.messages.append(assistant)
            self.instances.save_messages(instance, len(instance.messages) - 1)  # write-ahead
            outcome = self.workspaces.call(self.workspaces.open(instance.workspace_id), name, arguments)
            ok, text = outcome.ok, outcome.text
        result = _result(call, ok, text)
        if gone.is_set():
            result.metadata["interrupted"] = GONE
        self._finish(instance, assistant, [result])
        return Answer(text, ok)

    def _finish(
        self, instance: SessionInstance, assistant: ConversationMessage, results: list[ConversationMessage]
    ) -> None:
        """Commit the workspace, link the call's message to it, store the message and its results."""
        version = self.workspaces.commit(self.workspaces.open(instance.workspace_id)).id
        assistant.workspace_version = instance.head_version = version
        start = instance.messages.index(assistant)
        instance.messages[start + 1 :] = results
        self.instances.save_messages(instance, start)

    def recover(self, instance: SessionInstance) -> None:
        """Record the calls a killed domarkx left unanswered as interrupted, with the workspace as they left it."""
        if not instance.messages:
            return
        last = instance.messages[-1]
        if last.role != "assistant" or not last.tool_calls or CLIENT_KEY not in last.metadata:
            return
        results = [_result(call, False, f"error: interrupted: {DIED}") for call in last.tool_calls]
        for result in results:
            result.metadata["interrupted"] = DIED
        self._finish(instance, last, results)

    def _follow(self, workspace_id: str) -> None:
        """After a reset (here or elsewhere) the instance has a new workspace: release the old one's processes."""
        if self._workspace_id is not None and self._workspace_id != workspace_id:
            with contextlib.suppress(DomarkxError):  # removed meanwhile: nothing left to release
                self.workspaces.close(self.workspaces.open(self._workspace_id))
        self._workspace_id = workspace_id

    def close(self) -> None:
        """Release the workspace's processes (kernels, containers, servers); its state stays."""
        if self._workspace_id is not None:
            self.workspaces.close(self.workspaces.open(self._workspace_id))


def _oversized(arguments: dict[str, Any]) -> str | None:
    """Why arguments cannot be taken: too large to store, or not text a document can hold."""
    try:
        size = len(json.dumps(arguments, ensure_ascii=False).encode("utf-8"))
    except UnicodeEncodeError:
        return "the arguments hold a lone surrogate, which is not text"
    if size > MAX_ARGUMENT_BYTES:
        return f"the arguments weigh {size} bytes, more than the {MAX_ARGUMENT_BYTES} a call may send"
    return None


def _result(call: ToolCallRecord, ok: bool, text: str) -> ConversationMessage:
    return ConversationMessage(
        role="tool", content=text, tool_call_id=call.id, tool_ok=ok, metadata={"name": call.name}
    )
