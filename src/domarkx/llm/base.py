"""The provider interface: what the turn loop asks of a model, in provider-neutral types.

A provider turns a conversation plus the workspace's tools into one assistant
reply. Everything SDK-specific (message shapes, streaming deltas, HTTP errors)
stays inside the provider module, which is imported only when its provider is
chosen, so the rest of domarkx never loads ``openai`` or ``anthropic``.

Providers are constructed with a model name and the per-document options from
session-config; each validates its options with a pydantic model that forbids
unknown keys, so a typo is an error that names the key instead of being ignored.
"""

from __future__ import annotations

import abc
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from domarkx import _entrypoints
from domarkx.data import plain
from domarkx.errors import DomarkxError, ModelResponseError, UsageError

Role = Literal["system", "user", "assistant", "tool"]
TextCallback = Callable[[str], None]

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What OpenAI and Anthropic accept as a function name; the workspace names tools to fit."""

_SECRET_KEYS = frozenset({"api_key", "apikey", "key", "token", "access_token", "secret", "password"})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for. ``id`` links the tool's result message back to it."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        found = plain.problem(self.arguments)
        if found is not None:  # it could not be stored, and no tool needs it
            raise ModelResponseError(
                f"the model called {self.name} with unusable arguments: the data {found.problem}",
                hint="try again; if it keeps happening, try another model",
            )


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A tool offered to the model: its name and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]

    def __post_init__(self) -> None:
        if not TOOL_NAME.fullmatch(self.name):
            raise DomarkxError(
                f"tool name {self.name!r} cannot be offered to a model",
                hint="tool names must match ^[a-zA-Z0-9_-]{1,64}$; rename the resource or the tool",
            )


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the conversation as a model sees it.

    Assistant messages may carry ``tool_calls``; each tool message answers one of
    them through ``tool_call_id``.
    """

    role: Role
    content: str
    tool_calls: Sequence[ToolCall] = ()
    tool_call_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"a {self.role} message cannot carry tool calls")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("tool messages, and only they, need a tool_call_id")


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a reply cost, as the server counted them."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Completion:
    """One assistant reply: its text, the tool calls it asks for, and what it cost."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    model: str = ""
    """The model that answered, as the server names it (may be more precise than the request)."""
    finish_reason: str | None = None

    def metadata(self) -> dict[str, Any]:
        """What the assistant message's metadata records about this reply (never any credential)."""
        data: dict[str, Any] = {"model": self.model}
        if self.usage is not None:
            data["usage"] = {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
            }
        if self.finish_reason is not None:
            data["finish_reason"] = self.finish_reason
        return data


class ProviderOptions(BaseModel):
    """Per-document provider settings (session-config ``model_options``); unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=ProviderOptions)


class Provider(abc.ABC):
    """Base class of every model provider; register it under the ``domarkx.providers`` entry point.

    A subclass sets ``name``, narrows ``Options`` to its own :class:`ProviderOptions`
    model (annotating ``options`` to match) and implements :meth:`complete`.
    """

    name: ClassVar[str]
    Options: ClassVar[type[ProviderOptions]] = ProviderOptions
    options: ProviderOptions

    def __init__(self, model: str, options: Mapping[str, Any] | None = None) -> None:
        self.model = model
        self.options = parse_options(self.Options, options or {}, provider=self.name)
        self.sleep: Callable[[float], None] = time.sleep
        """How retries wait; tests replace it so that they never sleep."""

    @abc.abstractmethod
    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        *,
        on_text: TextCallback | None = None,
    ) -> Completion:
        """Ask the model for the next assistant reply.

        Text is passed to ``on_text`` piece by piece as it arrives (so the CLI can
        print it); the return value is the whole reply with tool calls assembled.
        Failures raise :class:`domarkx.errors.ProviderError`; the caller's
        conversation is untouched, so the same call can be made again.
        """

    def check(self) -> None:  # noqa: B027 - optional hook; a provider with no server has nothing to check
        """Raise the :class:`~domarkx.errors.ProviderError` a call would, if the model cannot be reached.

        Cheap and without side effects (no tokens spent): ``chat`` calls it
        before it opens the prompt, so a dead server is one line, not a surprise
        after the first message.
        """

    def close(self) -> None:  # noqa: B027 - optional hook; most providers hold nothing
        """Release network connections; the provider must not be used afterwards."""

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def parse_options(model: type[OptionsT], options: Mapping[str, Any], *, provider: str) -> OptionsT:
    """Validate a provider's options, turning pydantic's report into one line that names the key."""
    for key in options:
        if key.lower() in _SECRET_KEYS or key.lower().endswith(("_api_key", "_secret", "_password")):
            raise UsageError(
                f"model option {key!r} is not allowed: credentials are never written in documents",
                hint="set the provider's API key environment variable instead (see `api_key_env`)",
            )
    try:
        return model.model_validate(dict(options))
    except ValidationError as exc:
        raise _options_error(exc, model, provider) from exc


def _options_error(exc: ValidationError, model: type[ProviderOptions], provider: str) -> UsageError:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "model_options"
    hint = "known options: " + (", ".join(sorted(model.model_fields)) or "none")
    if first["type"] == "extra_forbidden":
        return UsageError(f"unknown model option {key!r} for provider {provider}", hint=hint)
    return UsageError(f"model option {key!r} for provider {provider}: {first['msg']}", hint=hint)


MODEL_ENV = "DOMARKX_MODEL"
_NO_MODEL_HINT = """pass --model PROVIDER:MODEL (e.g. --model openai:gpt-4o-mini),
or set "model" in the document's session-config, or export DOMARKX_MODEL=PROVIDER:MODEL;
--model replay: answers offline"""


def resolve_model(spec: str | None, session_config: Mapping[str, Any]) -> tuple[str, str]:
    """The ``PROVIDER:MODEL`` to use and where it came from: ``--model``, else session-config, else env."""
    if spec:
        return spec, "--model"
    configured = session_config.get("model")
    if configured is not None:
        if not isinstance(configured, str) or not configured:
            raise UsageError('session-config "model" must be a string like "openai:gpt-4o-mini"')
        return configured, "session-config"
    from_env = os.environ.get(MODEL_ENV)
    if from_env:
        return from_env, MODEL_ENV
    raise UsageError("no model chosen", hint=_NO_MODEL_HINT)


def get_provider(spec: str | None, session_config: Mapping[str, Any]) -> Provider:
    """Build the provider for ``spec`` (``--model``), else session-config ``model``, else ``$DOMARKX_MODEL``.

    ``PROVIDER:MODEL`` splits at the first colon, so ``openai:llama3:8b`` asks the
    ``openai`` provider for ``llama3:8b``. Session-config ``model_options`` are
    passed on only when the provider is the one session-config names (or names
    none): options written for one provider mean nothing to another.
    """
    chosen, source = resolve_model(spec, session_config)
    provider_name, colon, model = chosen.partition(":")
    if not colon or not provider_name:
        known = ", ".join(_entrypoints.names(_entrypoints.PROVIDERS))
        raise UsageError(
            f"model {chosen!r} (from {source}) is not PROVIDER:MODEL",
            hint=f"for example openai:gpt-4o-mini or replay:; known providers: {known}",
        )
    cls = _entrypoints.load(_entrypoints.PROVIDERS, provider_name, what="provider")
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise DomarkxError(f"provider {provider_name!r} is not a Provider subclass (domarkx.llm.base)")
    provider: Provider = cls(model, _options_for(provider_name, session_config))
    return provider


def _options_for(provider_name: str, session_config: Mapping[str, Any]) -> Mapping[str, Any]:
    options = session_config.get("model_options") or {}
    if not isinstance(options, Mapping):
        raise UsageError('session-config "model_options" must be an object')
    configured = session_config.get("model")
    if isinstance(configured, str) and configured.partition(":")[0] != provider_name:
        return {}
    return options
