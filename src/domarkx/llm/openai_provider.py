"""The ``openai`` provider: any OpenAI-compatible chat-completions server, through the official SDK.

OpenAI itself, Ollama, vLLM, llama.cpp's server, LM Studio… all speak the same
``POST /chat/completions``; only the base URL and the key differ. Both come from
the SDK's standard variables (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``), or the
base URL from session-config ``model_options``. The key is read from the
environment only, never from a document, so it cannot reach the store or an export;
a document may choose neither the server nor the key variable unless the user trusts it
(:meth:`~domarkx.llm.base.Provider.powers`).

The module is named ``openai_provider`` so that ``import openai`` inside it is the SDK.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import Field

from domarkx import _keys
from domarkx.errors import (
    ModelConnectionError,
    ModelResponseError,
    ProviderError,
    UsageError,
)
from domarkx.llm import _http
from domarkx.llm._retrying import RetryingProvider, RetryOptions
from domarkx.llm.base import (
    ChatMessage,
    Completion,
    TextCallback,
    ToolCall,
    ToolDefinition,
    Usage,
)

R = TypeVar("R")
_BETTER_MODEL = f"send again ({_http.KEPT}), or use a model that is better at tool calling"

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NO_KEY_NEEDED = "not-needed"
"""Sent as the key to a custom base URL when none is set: local servers ignore it, the SDK insists."""


class OpenAIOptions(RetryOptions):
    """``model_options`` for the openai provider."""

    base_url: str | None = None
    """The server (``http://localhost:11434/v1`` for Ollama) unless ``OPENAI_BASE_URL`` is set; needs trust."""
    api_key_env: str = "OPENAI_API_KEY"
    """The environment variable that holds the key (the key itself never goes in a document)."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    seed: int | None = None
    stop: list[str] | None = None
    timeout: float = Field(default=120.0, gt=0)
    """Seconds to wait for the server to connect, and then between two pieces of the reply."""
    stream: bool = True
    stream_usage: bool = True
    """Ask for token usage at the end of a stream; turn off for a server that rejects ``stream_options``."""


class OpenAIProvider(RetryingProvider):
    """Chat completions with streaming, tool calls and usage, retried by :mod:`domarkx.llm._http`."""

    name = "openai"
    Options = OpenAIOptions
    options: OpenAIOptions
    key_env = "OPENAI_API_KEY"
    url_env = "OPENAI_BASE_URL"

    def __init__(self, model: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(model, options)
        if not model:
            raise UsageError(
                "the openai provider needs a model name",
                hint="e.g. --model openai:gpt-4o-mini, or openai:llama3.2 with Ollama's base URL",
            )
        # The user's own setting wins over the document's (which needed trust: Provider.powers).
        self.base_url = (os.environ.get("OPENAI_BASE_URL") or self.options.base_url or DEFAULT_BASE_URL).rstrip("/")
        key = _keys.get(self.options.api_key_env)
        if not key and self.base_url == DEFAULT_BASE_URL:
            raise UsageError(
                f"no API key: {self.options.api_key_env} is not set",
                hint=f"export {self.options.api_key_env}=…, or point OPENAI_BASE_URL (or model_options "
                "base_url) at a local server such as Ollama: http://localhost:11434/v1",
            )
        self._key = key or NO_KEY_NEEDED
        self._client: openai.OpenAI | None = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _params(self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition]) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "messages": [to_openai(m) for m in messages]}
        if tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in tools
            ]
        for key in ("temperature", "top_p", "max_tokens", "seed", "stop"):
            value = getattr(self.options, key)
            if value is not None:
                params[key] = value
        return params

    # Requests go through the SDK's own ``post`` with the body built above: the
    # typed ``chat.completions.create`` re-walks the whole conversation to
    # transform it on every call, which costs more than the rest of a turn.
    def _attempt(self, params: dict[str, Any], on_text: TextCallback | None) -> Completion:
        shown = _http.Shown(on_text)
        try:
            if self.options.stream:
                return self._streamed(params, shown)
            return self._whole(params, shown)
        except ProviderError as err:
            if shown.any:
                err.retryable = False  # part of the reply is on screen: sending again would repeat it
            raise

    def _streamed(self, params: dict[str, Any], shown: _http.Shown) -> Completion:
        extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if self.options.stream_usage else {}
        body = {**params, **extra, "stream": True}
        stream = self._call(
            lambda client: client.post(
                "/chat/completions",
                body=body,
                cast_to=ChatCompletion,
                stream=True,
                stream_cls=openai.Stream[ChatCompletionChunk],
            )
        )
        reply = _Assembly()
        with stream:
            for chunk in self._chunks(stream):
                reply.add(chunk, shown)
        if reply.finish_reason is None:
            raise ModelConnectionError(
                f"the reply stream from {self.base_url} ended before the reply was complete",
                hint=f"send again; {_http.KEPT}",
            )
        return reply.completion(self.model)

    def _whole(self, params: dict[str, Any], shown: _http.Shown) -> Completion:
        response: ChatCompletion = self._call(
            lambda client: client.post("/chat/completions", body=params, cast_to=ChatCompletion)
        )
        if not response.choices:
            raise ModelResponseError(
                f"the model server at {self.base_url} answered with no choices", hint=_http.ODD_REPLY
            )
        choice = response.choices[0]
        content = choice.message.content or ""
        if content:
            shown(content)
        calls = tuple(
            ToolCall(
                id=c.id,
                name=c.function.name,
                arguments=parse_arguments(c.function.name, c.function.arguments),
            )
            for c in choice.message.tool_calls or ()
            if c.type == "function"
        )
        usage = response.usage
        return Completion(
            content=content,
            tool_calls=calls,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else None,
            model=response.model or self.model,
            finish_reason=choice.finish_reason,
        )

    def _call(self, request: Callable[[openai.OpenAI], R]) -> R:
        if self._client is None:
            self._client = openai.OpenAI(
                api_key=self._key, base_url=self.base_url, max_retries=0, timeout=self.options.timeout
            )
        try:
            return request(self._client)
        except openai.OpenAIError as exc:
            raise self.translate(exc) from exc

    def _chunks(self, stream: Iterator[ChatCompletionChunk]) -> Iterator[ChatCompletionChunk]:
        """The stream's chunks, with a failure half-way translated like a failure up front."""
        while True:
            try:
                chunk = next(stream)
            except StopIteration:
                return
            except openai.OpenAIError as exc:
                raise self.translate(exc, mid_stream=True) from exc
            except ValueError as exc:  # a data: line that is not JSON
                raise ModelResponseError(
                    f"the model server at {self.base_url} sent a malformed stream", hint=_http.ODD_REPLY
                ) from exc
            yield chunk

    def translate(self, exc: openai.OpenAIError, *, mid_stream: bool = False) -> ProviderError:
        """Our error for an SDK error: the most specific class, one line, no credential in it."""
        return _http.sdk_error(
            exc,
            openai,
            server=self.base_url,
            key_env=self.options.api_key_env,
            url_hint=self.url_hint(),
            timeout=self.options.timeout,
            mid_stream=mid_stream,
            secrets=(self._key,),
        )


def to_openai(message: ChatMessage) -> dict[str, Any]:
    """One message in the chat-completions shape."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": json.dumps(call.arguments, ensure_ascii=False),
                    },
                }
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content}


def _not_json(constant: str) -> Any:
    """NaN and ±Infinity: Python's json reads them, standard JSON (and so the store) has no such values."""
    raise ValueError(f"{constant} is not JSON")


def parse_arguments(name: str, raw: str) -> dict[str, Any]:
    """A tool call's arguments, which the model sends as a JSON string; empty means none."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, NaN/Infinity, absurd nesting
        raise ModelResponseError(
            f"the model called {name} with arguments that are not JSON: {_http.one_line(raw, limit=80)}",
            hint=_BETTER_MODEL,
        ) from exc
    if not isinstance(value, dict):
        raise ModelResponseError(
            f"the model called {name} with arguments that are not a JSON object", hint=_BETTER_MODEL
        )
    return value


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class _Assembly:
    """A streamed reply put back together: text deltas joined, tool-call deltas merged by index."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    usage: Usage | None = None
    model: str = ""
    finish_reason: str | None = None

    def add(self, chunk: ChatCompletionChunk, shown: _http.Shown) -> None:
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            if choice.delta.content:
                self.text.append(choice.delta.content)
                shown(choice.delta.content)
            for delta in choice.delta.tool_calls or ():
                call = self.calls.setdefault(delta.index, _PartialCall())
                call.id = call.id or delta.id or ""
                if delta.function is not None:
                    name = delta.function.name or ""
                    if name and name != call.name:  # some servers repeat the name in every delta
                        call.name += name
                    call.arguments.append(delta.function.arguments or "")
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason

    def completion(self, requested_model: str) -> Completion:
        calls = []
        for index, call in sorted(self.calls.items()):
            if not call.name:
                raise ModelResponseError("the model sent a tool call without a name", hint=_BETTER_MODEL)
            arguments = parse_arguments(call.name, "".join(call.arguments))
            calls.append(ToolCall(id=call.id or f"call_{index}", name=call.name, arguments=arguments))
        return Completion(
            content="".join(self.text),
            tool_calls=tuple(calls),
            usage=self.usage,
            model=self.model or requested_model,
            finish_reason=self.finish_reason,
        )
