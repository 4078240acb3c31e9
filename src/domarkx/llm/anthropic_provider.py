"""The ``anthropic`` provider: Claude through the official SDK (``pip install 'domarkx[anthropic]'``).

The SDK is optional, so it is imported when the provider is built, and a missing
SDK is a usage error that says what to install. The Messages API differs from
chat completions in shape only: system text is a separate parameter, tool calls
are ``tool_use`` blocks of the assistant, and tool results are ``tool_result``
blocks of the next user message.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from domarkx import _keys
from domarkx.errors import ModelConnectionError, ModelResponseError, ProviderError, UsageError
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

DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicOptions(RetryOptions):
    """``model_options`` for the anthropic provider."""

    base_url: str | None = None
    """The server, unless ``ANTHROPIC_BASE_URL`` is set (the user's choice wins); needs trust."""
    api_key_env: str = "ANTHROPIC_API_KEY"
    max_tokens: int = Field(default=4096, gt=0)
    """The Messages API requires a limit on the reply's length."""
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: list[str] | None = None
    timeout: float = Field(default=120.0, gt=0)
    stream: bool = True


class AnthropicProvider(RetryingProvider):
    """Messages API with streaming text, tool use and usage, retried by :mod:`domarkx.llm._http`."""

    name = "anthropic"
    Options = AnthropicOptions
    options: AnthropicOptions
    key_env = "ANTHROPIC_API_KEY"
    url_env = "ANTHROPIC_BASE_URL"

    def __init__(self, model: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(model, options)
        try:
            self.sdk = importlib.import_module("anthropic")
            self.httpx = importlib.import_module("httpx2")
        except ImportError as exc:
            raise UsageError(
                "the anthropic provider needs the anthropic SDK", hint="pip install 'domarkx[anthropic]'"
            ) from exc
        if not model:
            raise UsageError(
                "the anthropic provider needs a model name", hint="e.g. --model anthropic:claude-sonnet-4-5"
            )
        # The user's own setting wins over the document's (which needed trust: Provider.powers).
        self.base_url = (os.environ.get("ANTHROPIC_BASE_URL") or self.options.base_url or DEFAULT_BASE_URL).rstrip("/")
        key = _keys.get(self.options.api_key_env)
        if not key and self.base_url == DEFAULT_BASE_URL:
            raise UsageError(
                f"no API key: {self.options.api_key_env} is not set",
                hint=f"export {self.options.api_key_env}=…",
            )
        self._key = key or "not-needed"
        self._client: Any = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _params(self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition]) -> dict[str, Any]:
        system, turns = to_anthropic(messages)
        params: dict[str, Any] = {
            "model": self.model,
            "messages": turns,
            "max_tokens": self.options.max_tokens,
        }
        if system:
            params["system"] = system
        if tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
            ]
        sampling = {"temperature": self.options.temperature, "top_p": self.options.top_p}
        if any(value is not None for value in sampling.values()):
            # Sent as extra body fields: recent SDK releases no longer take them as arguments.
            params["extra_body"] = {key: value for key, value in sampling.items() if value is not None}
        if self.options.stop:
            params["stop_sequences"] = self.options.stop
        return params

    def _attempt(self, params: dict[str, Any], on_text: TextCallback | None) -> Completion:
        shown = _http.Shown(on_text)
        mid_stream = False
        try:
            client = self._connect()
            if not self.options.stream:
                message = client.messages.create(**params)
                for block in message.content:
                    if block.type == "text" and block.text:
                        shown(block.text)
                return self._completion(message)
            with client.messages.stream(**params) as stream:
                mid_stream = True
                for piece in stream.text_stream:
                    shown(piece)
                message = stream.get_final_message()
            return self._completion(message)
        except ProviderError as err:
            if shown.any:
                err.retryable = False
            raise
        except (self.sdk.AnthropicError, self.httpx.HTTPError) as exc:
            translated = self._translate(exc, mid_stream=mid_stream)
            if shown.any:
                translated.retryable = False
            raise translated from exc

    def _connect(self) -> Any:
        if self._client is None:
            self._client = self.sdk.Anthropic(
                api_key=self._key, base_url=self.base_url, max_retries=0, timeout=self.options.timeout
            )
        return self._client

    def _translate(self, exc: Exception, *, mid_stream: bool) -> ProviderError:
        # The SDK lets transport errors inside a stream through untranslated.
        if isinstance(exc, self.httpx.TimeoutException):
            return _http.timeout_error(self.base_url, self.options.timeout, mid_stream=mid_stream)
        if isinstance(exc, self.httpx.HTTPError):
            cause = _http.one_line(str(exc) or type(exc).__name__, secrets=(self._key,))
            return _http.connection_error(self.base_url, cause, mid_stream=mid_stream, url_hint=self.url_hint())
        return _http.sdk_error(
            exc,
            self.sdk,
            server=self.base_url,
            key_env=self.options.api_key_env,
            url_hint=self.url_hint(),
            timeout=self.options.timeout,
            mid_stream=mid_stream,
            secrets=(self._key,),
        )

    def _completion(self, message: Any) -> Completion:
        if message.stop_reason is None:
            raise ModelConnectionError(
                f"the reply stream from {self.base_url} ended before the reply was complete",
                hint=f"send again; {_http.KEPT}",
            )
        text = "".join(block.text for block in message.content if block.type == "text")
        calls = []
        for block in message.content:
            if block.type == "tool_use":
                if not isinstance(block.input, dict):
                    raise ModelResponseError(
                        f"the model called {block.name} with arguments that are not an object",
                        hint=_http.ODD_REPLY,
                    )
                calls.append(ToolCall(id=block.id, name=block.name, arguments=block.input))
        usage = message.usage
        return Completion(
            content=text,
            tool_calls=tuple(calls),
            usage=Usage(usage.input_tokens, usage.output_tokens) if usage is not None else None,
            model=message.model or self.model,
            finish_reason=message.stop_reason,
        )


def to_anthropic(messages: Sequence[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """System text, and the conversation as alternating user/assistant turns of content blocks.

    Tool results become ``tool_result`` blocks of a user turn, and neighbouring
    messages of one role are merged, because the API wants strict alternation.
    Empty text blocks are left out: the API rejects them.
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role, blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _blocks(message: ChatMessage) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        return "user", [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in message.tool_calls]
    return ("assistant" if message.role == "assistant" else "user"), blocks
