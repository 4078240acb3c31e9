"""The anthropic provider against a fake Messages API server on 127.0.0.1, through the real SDK."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic", reason="the anthropic SDK is an optional extra")
import httpx2  # noqa: E402 - after the skip: both come with the SDK

from domarkx.errors import (  # noqa: E402
    ModelAuthError,
    ModelConnectionError,
    ModelRateLimitError,
    ModelRequestError,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
    ProviderError,
    UsageError,
)
from domarkx.llm.anthropic_provider import AnthropicProvider, to_anthropic  # noqa: E402
from domarkx.llm.base import ChatMessage, ToolCall, ToolDefinition, Usage  # noqa: E402
from fake_anthropic import FakeAnthropic  # noqa: E402
from fakehttp import calls, error, fault, text  # noqa: E402

KEY = "sk-ant-test-0123456789"
HELLO = [ChatMessage("user", "hello")]
TOOLS = [ToolDefinition("shell_run", "Run a shell command.", {"type": "object"})]

Make = Callable[..., AnthropicProvider]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        yield fake


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def make(server: FakeAnthropic, waits: list[float]) -> Iterator[Make]:
    made: list[AnthropicProvider] = []

    def build(model: str = "claude-test", **options: Any) -> AnthropicProvider:
        provider = AnthropicProvider(model, options)
        provider.sleep = waits.append
        made.append(provider)
        return provider

    yield build
    for provider in made:
        provider.close()


def test_streamed_text_reaches_on_text_in_order(server: FakeAnthropic, make: Make) -> None:
    said = "Claude says hello to the fake server."
    server.queue(text(said, usage=(12, 9), model="claude-test-2025"))
    pieces: list[str] = []

    reply = make().complete(HELLO, [], on_text=pieces.append)

    assert len(pieces) > 1
    assert "".join(pieces) == said == reply.content
    assert reply.usage == Usage(12, 9)
    assert reply.model == "claude-test-2025"
    assert reply.finish_reason == "end_turn"


def test_tool_use_is_assembled(server: FakeAnthropic, make: Make) -> None:
    server.queue(calls(("shell_run", {"command": "ls -la"}), ("shell_run", {"command": "pwd"}), content="Looking."))

    reply = make().complete(HELLO, TOOLS)

    assert reply.content == "Looking."
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("shell_run", {"command": "ls -la"}),
        ("shell_run", {"command": "pwd"}),
    ]
    assert reply.finish_reason == "tool_use"


def test_non_streaming(server: FakeAnthropic, make: Make) -> None:
    server.queue(calls(("shell_run", {"command": "pwd"}), content="Checking.", usage=(7, 3)))
    pieces: list[str] = []

    reply = make(stream=False).complete(HELLO, TOOLS, on_text=pieces.append)

    assert pieces == ["Checking."]
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("shell_run", {"command": "pwd"})]
    assert reply.usage == Usage(7, 3)
    assert not server.requests[0].body.get("stream")


def test_request_shape(server: FakeAnthropic, make: Make) -> None:
    server.queue(text("Done."))
    conversation = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "List files."),
        ChatMessage("assistant", "", tool_calls=[ToolCall("t1", "shell_run", {"command": "ls"})]),
        ChatMessage("tool", "a.txt", tool_call_id="t1"),
    ]

    make(max_tokens=100, temperature=0.3).complete(conversation, TOOLS)

    request = server.requests[0]
    assert request.path == "/v1/messages"
    body = request.body
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "List files."}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "shell_run", "input": {"command": "ls"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "a.txt"}]},
    ]
    assert body["tools"] == [
        {"name": "shell_run", "description": "Run a shell command.", "input_schema": {"type": "object"}}
    ]
    assert (body["max_tokens"], body["temperature"]) == (100, 0.3)
    assert KEY.encode() not in request.raw


def test_parallel_tool_results_and_a_follow_up_share_one_user_turn() -> None:
    calls_ = [ToolCall("a", "f", {}), ToolCall("b", "f", {})]
    system, turns = to_anthropic(
        [
            ChatMessage("user", "go"),
            ChatMessage("assistant", "Both.", tool_calls=calls_),
            ChatMessage("tool", "1", tool_call_id="a"),
            ChatMessage("tool", "2", tool_call_id="b"),
            ChatMessage("user", "and then?"),
        ]
    )
    assert system == ""
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert [b["type"] for b in turns[2]["content"]] == ["tool_result", "tool_result", "text"]


FAULTS = [
    pytest.param(error(401, "invalid x-api-key"), ModelAuthError, "refused the credentials", id="401"),
    pytest.param(error(404, "model: nope"), ModelRequestError, "model: nope", id="404"),
    pytest.param(error(429, "slow down"), ModelRateLimitError, "rate-limiting", id="429"),
    pytest.param(error(529, "Overloaded"), ModelServerError, "HTTP 529", id="529"),
    pytest.param(fault("drop"), ModelConnectionError, "cannot reach", id="drop"),
    pytest.param(fault("cut"), ModelConnectionError, "broke off", id="cut-mid-stream"),
    pytest.param(fault("truncate"), ModelConnectionError, "ended before the reply was complete", id="truncated"),
    pytest.param(fault("error_event"), ModelServerError, "reported an error: Overloaded", id="error-event"),
]


@pytest.mark.parametrize(("reply", "expected", "words"), FAULTS)
def test_each_failure_is_our_error_in_one_line(
    server: FakeAnthropic, make: Make, reply: Any, expected: type[ProviderError], words: str
) -> None:
    server.queue(reply)
    with pytest.raises(ProviderError) as caught:
        make(max_retries=0).complete(HELLO, [])
    assert type(caught.value) is expected
    assert words in caught.value.message
    assert "\n" not in caught.value.format()
    assert caught.value.hint


def test_time_out(server: FakeAnthropic, make: Make) -> None:
    server.queue(fault("hang"))
    with pytest.raises(ModelTimeoutError, match=r"did not answer within 0\.3s"):
        make(timeout=0.3).complete(HELLO, [])


def test_overloaded_is_retried_with_retry_after(server: FakeAnthropic, make: Make, waits: list[float]) -> None:
    server.queue(error(529, "Overloaded", headers={"retry-after": "2"}), text("Back."))
    assert make().complete(HELLO, []).content == "Back."
    assert waits == [2.0]


def test_401_is_not_retried(server: FakeAnthropic, make: Make, waits: list[float]) -> None:
    server.queue(error(401), text("never"))
    with pytest.raises(ModelAuthError) as caught:
        make().complete(HELLO, [])
    assert "ANTHROPIC_API_KEY" in (caught.value.hint or "")
    assert len(server.requests) == 1


def test_no_key_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="ANTHROPIC_API_KEY is not set"):
        AnthropicProvider("claude-test")


def test_without_the_sdk_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)  # makes `import anthropic` fail
    with pytest.raises(UsageError, match="needs the anthropic SDK") as caught:
        AnthropicProvider("claude-test")
    assert caught.value.hint == "pip install 'domarkx[anthropic]'"


_REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/messages")


def _status_error(cls: type[Exception], status: int) -> Exception:
    response = httpx2.Response(status, request=_REQUEST)
    return cls("boom", response=response, body={"type": "error", "error": {"message": "boom"}})


def test_sdk_errors_translate(server: FakeAnthropic, make: Make) -> None:
    provider = make()
    cases: list[tuple[Exception, type[ProviderError]]] = [
        (anthropic.APITimeoutError(request=_REQUEST), ModelTimeoutError),
        (anthropic.APIConnectionError(request=_REQUEST), ModelConnectionError),
        (
            anthropic.APIResponseValidationError(httpx2.Response(200, request=_REQUEST), None),
            ModelResponseError,
        ),
        (_status_error(anthropic.AuthenticationError, 401), ModelAuthError),
        (_status_error(anthropic.PermissionDeniedError, 403), ModelAuthError),
        (_status_error(anthropic.RateLimitError, 429), ModelRateLimitError),
        (_status_error(anthropic.BadRequestError, 400), ModelRequestError),
        (_status_error(anthropic.InternalServerError, 500), ModelServerError),
        (_status_error(anthropic.APIStatusError, 200), ModelServerError),  # an error event inside a stream
        (httpx2.ReadTimeout("slow", request=_REQUEST), ModelTimeoutError),
        (httpx2.RemoteProtocolError("peer closed", request=_REQUEST), ModelConnectionError),
    ]
    for exc, ours in cases:
        translated = provider._translate(exc, mid_stream=False)
        assert type(translated) is ours, type(exc).__name__
        assert "\n" not in translated.format()
