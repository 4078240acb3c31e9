"""A small OpenAI-compatible chat-completions server for tests, and its pytest fixtures.

``POST /v1/chat/completions`` answers from a queue of scripted replies, streamed
(server-sent events, text word by word, tool-call arguments split mid-JSON) or
whole, and records every request. Registered as a plugin in ``tests/conftest.py``,
so any test can ask for ``fake_openai`` (the server) or ``openai_env`` (the server
plus ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` pointing at it)::

    def test_hello(openai_env):
        openai_env.queue(text("Hello!"), calls(("shell_run", {"command": "ls"})))
        ...
        assert openai_env.requests[0].body["messages"][-1]["content"] == "hi"
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from fakehttp import Handler, Recorded, Reply, ScriptedServer, calls, error, fault, text, thirds, words

__all__ = ["FAKE_KEY", "FakeOpenAI", "Reply", "calls", "error", "fault", "text"]

FAKE_KEY = "sk-test-domarkx-0123456789abcdef"
"""The key ``openai_env`` exports: distinctive, so a test can prove it is stored nowhere."""


class FakeOpenAI(ScriptedServer):
    """The chat-completions endpoint of an OpenAI-compatible server."""

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def route(self, path: str) -> bool:
        return path == "/v1/chat/completions"

    def respond(self, handler: Handler, request: Recorded, reply: Reply) -> None:
        body = request.body
        model = reply.model or body.get("model", "fake-model")
        ids = self.call_ids(reply)
        usage = self._usage(body, reply)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = [(None, json.dumps(e)) for e in self._chunks(reply, model, ids, usage if include_usage else None)]
            events.append((None, "[DONE]"))
            error_event = json.dumps({"error": {"message": "the fake server broke down", "type": "server_error"}})
            handler.send_events(events, reply, error_event)
        else:
            handler.send_json(200, self._whole(reply, model, ids, usage))

    @staticmethod
    def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
        if reply.usage is not None:
            prompt, completion = reply.usage
        else:
            prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
            completion = len(reply.content.split()) + len(reply.tool_calls)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    @staticmethod
    def _finish(reply: Reply) -> str:
        return "tool_calls" if reply.tool_calls else "stop"

    def _whole(self, reply: Reply, model: str, ids: list[str], usage: dict[str, int]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for id_, (name, args) in zip(ids, reply.tool_calls, strict=True)
            ]
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": self._finish(reply)}],
            "usage": usage,
        }

    def _chunks(
        self, reply: Reply, model: str, ids: list[str], usage: dict[str, int] | None
    ) -> Iterator[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return envelope([{"index": 0, "delta": delta, "finish_reason": finish}])

        def envelope(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
            return {**head, "choices": choices, **extra}

        yield chunk({"role": "assistant", "content": ""})
        for piece in words(reply.content):
            yield chunk({"content": piece})
        for index, (id_, (name, _)) in enumerate(zip(ids, reply.tool_calls, strict=True)):
            head = {
                "index": index,
                "id": id_,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            yield chunk({"tool_calls": [head]})
            if not reply.interleave:
                yield from self._argument_chunks(chunk, reply, only=index)
        if reply.interleave:
            yield from self._argument_chunks(chunk, reply, only=None)
        yield chunk({}, self._finish(reply))
        if usage is not None:
            yield envelope([], usage=usage)

    @staticmethod
    def _argument_chunks(chunk: Any, reply: Reply, only: int | None) -> Iterator[dict[str, Any]]:
        """Argument JSON in thirds: for one call, or round-robin across all of them."""
        pieces = [thirds(json.dumps(args)) for _, args in reply.tool_calls]
        for third in range(3):
            for index, parts in enumerate(pieces):
                if only is None or index == only:
                    yield chunk({"tool_calls": [{"index": index, "function": {"arguments": parts[third]}}]})


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on 127.0.0.1, stopped after the test."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def openai_env(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """The fake server, with ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` (:data:`FAKE_KEY`) pointing at it."""
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    return fake_openai
