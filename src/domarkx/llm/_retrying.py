"""What the SDK-backed providers (openai, anthropic) share: one reply is one attempt, retried.

A provider built on a vendor SDK only says how to turn the conversation into
request parameters and how to make one attempt; retries with backoff, the
notices they print and the reachability probe of ``domarkx doctor`` are the
same for all of them, so they live here once.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from domarkx.llm import _http
from domarkx.llm.base import ChatMessage, Completion, Provider, ProviderOptions, TextCallback, ToolDefinition


class RetryOptions(ProviderOptions):
    """The ``model_options`` every retrying provider takes."""

    max_retries: int = Field(default=3, ge=0, le=10)
    """Retries after a 429, a 5xx or a refused connection, with exponential backoff."""


class RetryingProvider(Provider):
    """A :class:`Provider` whose :meth:`complete` retries :meth:`_attempt` (see :func:`_http.with_retries`)."""

    options: RetryOptions
    base_url: str

    @classmethod
    def url_hint(cls) -> str:
        """Where a user points the provider at another server, for errors about reaching it."""
        return f"{cls.url_env} or model_options base_url"

    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        *,
        on_text: TextCallback | None = None,
    ) -> Completion:
        params = self._params(messages, tools)
        return _http.with_retries(
            lambda: self._attempt(params, on_text),
            max_retries=self.options.max_retries,
            sleep=self.sleep,
        )

    def check(self) -> None:
        _http.reachable(self.base_url, url_hint=self.url_hint())

    @abc.abstractmethod
    def _params(self, messages: Sequence[ChatMessage], tools: Sequence[ToolDefinition]) -> dict[str, Any]:
        """The SDK's request parameters for this conversation (built once, reused by every attempt)."""

    @abc.abstractmethod
    def _attempt(self, params: dict[str, Any], on_text: TextCallback | None) -> Completion:
        """One request; a :class:`~domarkx.errors.ProviderError` that is retryable makes another."""
