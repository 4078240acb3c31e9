"""The ``replay`` provider: offline, deterministic answers for tests, demos and CI.

``replay:PATH`` answers from a script of turns (YAML or JSON, see
docs/providers.md) or from the assistant messages recorded in a session
document (``replay:session.md``, e.g. an export); ``replay:`` or
``replay:echo`` repeats the last user message.

The provider keeps no state between calls, because every ``domarkx send`` is a
new process: the next turn is worked out from the conversation it is given.
The script's first *k* turns count as played when the conversation's last *k*
assistant messages are exactly those turns (text, tool names and arguments), and
the next call answers with turn *k*. So a conversation resumed tomorrow, or one
whose document already held other assistant messages, picks up where it stands.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from domarkx.errors import DocumentError, ProviderError, UsageError
from domarkx.llm.base import (
    TOOL_NAME,
    ChatMessage,
    Completion,
    Provider,
    TextCallback,
    ToolCall,
    ToolDefinition,
)

ECHO = "echo"
SCRIPT_HINT = "replay:PATH names a YAML or JSON list of turns, or a session document; see docs/providers.md"


class ScriptToolCall(BaseModel):
    """A tool call a scripted turn makes."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOOL_NAME.pattern)
    arguments: dict[str, Any] = Field(default_factory=dict)


class ScriptTurn(BaseModel):
    """One scripted assistant reply: text, tool calls, or both."""

    model_config = ConfigDict(extra="forbid")

    content: str = ""
    tool_calls: list[ScriptToolCall] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> ScriptTurn:
        if not self.content and not self.tool_calls:
            raise ValueError("a turn needs content, tool_calls or both")
        return self


class ReplayProvider(Provider):
    """Answers from a script, or echoes; never touches the network."""

    name = "replay"

    def __init__(self, model: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(model, options)
        self.script: Path | None = None if model in ("", ECHO) else Path(model)
        self.turns = load_script(self.script) if self.script is not None else None

    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        *,
        on_text: TextCallback | None = None,
    ) -> Completion:
        reply = self._echo(messages) if self.turns is None else self._next_turn(self.turns, messages, tools)
        if on_text is not None:
            for piece in re.findall(r"\s*\S+\s*|\s+", reply.content):
                on_text(piece)
        return reply

    def _echo(self, messages: Sequence[ChatMessage]) -> Completion:
        said = next((m.content for m in reversed(messages) if m.role == "user"), "")
        return Completion(content=f"You said: {said}", model=ECHO, finish_reason="stop")

    def _next_turn(
        self, turns: list[ScriptTurn], messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition]
    ) -> Completion:
        position = played(turns, messages)
        if position == len(turns):
            raise ProviderError(
                f"the replay script {self.script} has no turn left (all {len(turns)} played)",
                hint="add turns to the script, or continue with another model",
            )
        turn = turns[position]
        offered = {t.name for t in tools}
        for call in turn.tool_calls:
            if call.name not in offered:
                raise UsageError(
                    f"{self.script}: turn {position + 1} calls tool {call.name!r}, which is not offered",
                    hint="offered tools: " + (", ".join(sorted(offered)) or "none"),
                )
        calls = tuple(
            ToolCall(id=f"replay_{position + 1}_{i + 1}", name=c.name, arguments=c.arguments)
            for i, c in enumerate(turn.tool_calls)
        )
        return Completion(
            content=turn.content,
            tool_calls=calls,
            model=self.model,
            finish_reason="tool_calls" if calls else "stop",
        )


def played(turns: Sequence[ScriptTurn], messages: Sequence[ChatMessage]) -> int:
    """How many turns the conversation has already played: the longest script prefix it ends with."""
    replies = [m for m in messages if m.role == "assistant"]
    for k in range(min(len(turns), len(replies)), 0, -1):
        if all(_same(reply, turn) for reply, turn in zip(replies[-k:], turns[:k], strict=True)):
            return k
    return 0


def _same(reply: ChatMessage, turn: ScriptTurn) -> bool:
    """Equal up to whitespace (the text may have passed through a Markdown export and back)
    and up to the outputs recorded after code blocks (a re-run may print other things)."""
    from domarkx.session.manager import without_outputs

    if _words(without_outputs(reply.content)) != _words(without_outputs(turn.content)):
        return False
    return [(c.name, c.arguments) for c in reply.tool_calls] == [(c.name, c.arguments) for c in turn.tool_calls]


def _words(text: str) -> str:
    return " ".join(text.split())


def recorded_turns(path: Path) -> list[ScriptTurn]:
    """The assistant messages of a session document, as a script: replaying a recorded conversation.

    A turn's text is what the model wrote: the prose and the code blocks
    (not their recorded outputs), as the conversation shows it to a model.
    """
    from domarkx.parsing.markdown import MarkdownParser, decode, line_offsets
    from domarkx.session.convert import from_document
    from domarkx.session.manager import with_code

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read recorded conversation {path}: {exc.strerror}", hint=SCRIPT_HINT) from exc
    text = decode(data, str(path))
    snapshot = MarkdownParser().parse(text, path=str(path))
    offsets = line_offsets(text)
    turns = []
    for msg in snapshot.messages:
        if msg.role != "assistant":
            continue
        message = from_document(msg, text[offsets[msg.start] : offsets[msg.end]])
        calls = [ScriptToolCall(name=c.name, arguments=c.arguments) for c in message.tool_calls]
        content = with_code(message)
        if content or calls:
            turns.append(ScriptTurn(content=content, tool_calls=calls))
    if not turns:
        raise UsageError(f"{path} records no assistant messages to replay", hint=SCRIPT_HINT)
    return turns


def load_script(path: Path) -> list[ScriptTurn]:
    """Read and check a replay script: a list of turns, or a mapping with a ``turns`` list.

    A Markdown session document (``.md``) replays its recorded assistant messages.
    """
    import yaml

    if path.suffix.lower() in (".md", ".markdown"):
        return recorded_turns(path)

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UsageError(f"replay script not found: {path}", hint=SCRIPT_HINT) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read replay script {path}: {exc}", hint=SCRIPT_HINT) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise DocumentError(
            f"replay script is not valid YAML: {exc.problem}",
            path=str(path),
            line=mark.line + 1 if mark else 1,
            col=mark.column + 1 if mark else 1,
        ) from exc
    except yaml.YAMLError as exc:
        raise DocumentError(f"replay script is not valid YAML: {exc}", path=str(path)) from exc
    if isinstance(data, dict) and set(data) == {"turns"}:
        data = data["turns"]
    if not isinstance(data, list) or not data:
        raise DocumentError("a replay script is a non-empty list of turns", path=str(path), hint=SCRIPT_HINT)
    turns = []
    for number, item in enumerate(data, start=1):
        try:
            turns.append(ScriptTurn.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UsageError(
                f"{path}: turn {number}{f' ({where})' if where else ''}: {first['msg']}", hint=SCRIPT_HINT
            ) from exc
    return turns
