"""The data model shared by parsing, the store and sessions.

These are plain pydantic models: they validate what comes from users (configs),
and they serialise the structured view of a snapshot into the store.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1
"""The document format this domarkx writes; see docs/format.md."""

ROLES = ("system", "user", "assistant", "tool")
"""Roles a ``## role`` heading may name."""


class Block(BaseModel):
    """One top-level block of a message or of the preamble.

    ``start``/``end`` are 0-based line indices into the document (end exclusive),
    so the block's raw Markdown can always be recovered from the document text.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["text", "code"]
    start: int
    end: int
    text: str = ""
    """For text blocks, the prose with blockquote markers removed; for code, the code."""
    lang: str | None = None
    attrs: dict[str, str] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)


class Message(BaseModel):
    """One ``## role`` section of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: str
    start: int
    end: int
    metadata: dict[str, Any] = Field(default_factory=dict)
    metadata_lines: tuple[int, int] | None = None
    """Line range of the ``msg-metadata`` block, so an export can rewrite just it."""
    blocks: list[Block] = Field(default_factory=list)

    @property
    def text(self) -> str:
        """The prose of the message, as the model sees it."""
        return "\n\n".join(b.text for b in self.blocks if b.kind == "text" and b.text)

    @property
    def code_blocks(self) -> list[Block]:
        """The message's code blocks (metadata excluded), in order."""
        return [b for b in self.blocks if b.kind == "code"]


class ResourceConfig(BaseModel):
    """One item of ``workspace-config``'s ``resources`` list.

    ``type`` selects the plugin; every other key is the plugin's own config.
    """

    model_config = ConfigDict(extra="allow")

    type: str
    name: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The plugin-specific keys (everything but ``type`` and ``name``)."""
        return dict(self.model_extra or {})


class WorkspaceConfig(BaseModel):
    """The ``workspace-config`` block: the resources a workspace is made of."""

    model_config = ConfigDict(extra="forbid")

    resources: list[ResourceConfig]


class SessionSnapshot(BaseModel):
    """An immutable, content-addressed session: the document and its structured view.

    The id is ``ids.digest_json(manifest)`` where the manifest names the document's
    digest, the format version and (for committed instances) the workspace state.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = ""
    format_version: int = FORMAT_VERSION
    document: str
    source: str | None = None
    front_matter: dict[str, Any] = Field(default_factory=dict)
    session_config: dict[str, Any] = Field(default_factory=dict)
    workspace_config: WorkspaceConfig | None = None
    setup: Block | None = None
    preamble_end: int = 0
    """Line index where the first message starts (the preamble is the lines before)."""
    messages: list[Message] = Field(default_factory=list)
    workspace_state: dict[str, Any] | None = None
    """For snapshots committed from an instance: the resource versions to start from."""

    @property
    def title(self) -> str | None:
        """A human label: front matter ``title``, else the source file name."""
        title = self.front_matter.get("title")
        if isinstance(title, str) and title:
            return title
        return self.source.rsplit("/", 1)[-1] if self.source else None


class ToolCallRecord(BaseModel):
    """A tool call an assistant message made, as recorded in the conversation."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class BlockOutput(BaseModel):
    """What running one of a message's code blocks printed (offline execution)."""

    model_config = ConfigDict(extra="forbid")

    block: int
    """Index into the message's code blocks."""
    ok: bool
    text: str


class ConversationMessage(BaseModel):
    """One message of an instance's conversation.

    ``raw`` is the message's Markdown when it came from a document, kept so an
    export reproduces it; messages the instance created have ``raw=None`` and are
    rendered. ``workspace_version`` links assistant messages to the workspace
    version after their tool calls (the seed's traceability rule).
    """

    model_config = ConfigDict(extra="forbid")

    role: str
    content: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    tool_call_id: str | None = None
    tool_ok: bool = True
    code: list[Block] = Field(default_factory=list)
    outputs: list[BlockOutput] = Field(default_factory=list)
    workspace_version: str | None = None
    raw: str | None = None


class SessionInstance(BaseModel):
    """A running copy of a snapshot: its own conversation and its own workspace."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str | None = None
    snapshot_id: str
    workspace_id: str
    status: Literal["running", "stopped"] = "running"
    created: float
    head_version: str | None = None
    """The workspace version after the last change (a turn, a setup or an ``exec``)."""
    messages: list[ConversationMessage] = Field(default_factory=list)
