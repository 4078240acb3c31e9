"""The openai provider against a real OpenAI-compatible HTTP server on 127.0.0.1, through the real SDK."""

from __future__ import annotations

import inspect
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from domarkx.errors import (
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
from domarkx.llm.base import ChatMessage, ToolCall, ToolDefinition, Usage
from domarkx.llm.openai_provider import OpenAIProvider, _Assembly, parse_arguments
from fake_openai import FAKE_KEY, FakeOpenAI, calls, error, fault, text

HELLO = [ChatMessage("user", "hello")]
TOOLS = [
    ToolDefinition(
        "shell_run", "Run a shell command.", {"type": "object", "properties": {"command": {"type": "string"}}}
    ),
    ToolDefinition("py_exec", "Run Python code.", {"type": "object", "properties": {"code": {"type": "string"}}}),
]

Make = Callable[..., OpenAIProvider]


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def make(openai_env: FakeOpenAI, waits: list[float]) -> Iterator[Make]:
    """Build providers against the fake server; their retries record waits instead of sleeping."""
    made: list[OpenAIProvider] = []

    def build(model: str = "test-model", **options: Any) -> OpenAIProvider:
        provider = OpenAIProvider(model, options)
        provider.sleep = waits.append
        made.append(provider)
        return provider

    yield build
    for provider in made:
        provider.close()


def test_streamed_text_reaches_on_text_in_order(openai_env: FakeOpenAI, make: Make) -> None:
    said = "The quick brown fox jumps over the lazy dog."
    openai_env.queue(text(said))
    pieces: list[str] = []

    reply = make().complete(HELLO, [], on_text=pieces.append)

    assert len(pieces) > 1
    assert "".join(pieces) == said == reply.content
    assert reply.tool_calls == ()
    assert reply.finish_reason == "stop"
    assert openai_env.requests[0].body["stream"] is True


def test_usage_and_model_are_captured(openai_env: FakeOpenAI, make: Make) -> None:
    openai_env.queue(text("Hi there.", usage=(21, 3), model="fake-model-2025-01-01"))

    reply = make("fake-model").complete(HELLO, [])

    assert reply.usage == Usage(input_tokens=21, output_tokens=3)
    assert reply.model == "fake-model-2025-01-01"
    assert reply.metadata() == {
        "model": "fake-model-2025-01-01",
        "usage": {"input_tokens": 21, "output_tokens": 3},
        "finish_reason": "stop",
    }
    assert openai_env.requests[0].body["stream_options"] == {"include_usage": True}


def test_usage_can_be_left_out_for_servers_that_reject_stream_options(openai_env: FakeOpenAI, make: Make) -> None:
    openai_env.queue(text("Hi."))

    reply = make(stream_usage=False).complete(HELLO, [])

    assert reply.content == "Hi."
    assert reply.usage is None
    assert "stream_options" not in openai_env.requests[0].body


@pytest.mark.parametrize("interleave", [False, True], ids=["one-after-another", "interleaved"])
def test_parallel_tool_calls_are_assembled_from_split_deltas(
    openai_env: FakeOpenAI, make: Make, interleave: bool
) -> None:
    first = {"command": "ls -la /tmp", "env": {"A": "1"}}
    second = {"code": 'print("{not json}")'}
    openai_env.queue(calls(("shell_run", first), ("py_exec", second), content="Let me look.", interleave=interleave))
    pieces: list[str] = []

    reply = make().complete(HELLO, TOOLS, on_text=pieces.append)

    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("shell_run", first), ("py_exec", second)]
    assert len({c.id for c in reply.tool_calls}) == 2
    assert all(c.id.startswith("call_") for c in reply.tool_calls)
    assert reply.content == "".join(pieces) == "Let me look."
    assert reply.finish_reason == "tool_calls"


def test_non_streaming(openai_env: FakeOpenAI, make: Make) -> None:
    openai_env.queue(calls(("shell_run", {"command": "pwd"}), content="Checking.", usage=(8, 4)))
    pieces: list[str] = []

    reply = make(stream=False).complete(HELLO, TOOLS, on_text=pieces.append)

    assert pieces == ["Checking."]
    assert reply.content == "Checking."
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("shell_run", {"command": "pwd"})]
    assert reply.usage == Usage(8, 4)
    assert reply.finish_reason == "tool_calls"
    assert not openai_env.requests[0].body.get("stream")


def test_request_carries_conversation_tools_and_options(openai_env: FakeOpenAI, make: Make) -> None:
    openai_env.queue(text("Done."))
    conversation = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "List files."),
        ChatMessage("assistant", "", tool_calls=[ToolCall("call_9", "shell_run", {"command": "ls"})]),
        ChatMessage("tool", "a.txt\nb.txt", tool_call_id="call_9"),
    ]

    make(temperature=0.2, max_tokens=50, seed=7).complete(conversation, TOOLS)

    body = openai_env.requests[0].body
    assert body["model"] == "test-model"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "List files."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "shell_run", "arguments": '{"command": "ls"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "a.txt\nb.txt"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in TOOLS
    ]
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.2, 50, 7)


def test_no_tools_means_no_tools_parameter(openai_env: FakeOpenAI, make: Make) -> None:
    openai_env.queue(text("Hi."))
    make().complete(HELLO, [])
    assert "tools" not in openai_env.requests[0].body


def test_the_key_travels_only_in_the_authorization_header(openai_env: FakeOpenAI, make: Make) -> None:
    openai_env.queue(text("Hi."))
    make().complete(HELLO, TOOLS)
    request = openai_env.requests[0]
    assert request.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert FAKE_KEY.encode() not in request.raw
    assert [v for k, v in request.headers.items() if FAKE_KEY in v and k.lower() != "authorization"] == []


def test_a_local_server_needs_no_key(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    fake_openai.queue(text("Hi."))
    with OpenAIProvider("llama3:8b") as provider:
        assert provider.complete(HELLO, []).content == "Hi."
    assert fake_openai.requests[0].headers["authorization"] == "Bearer not-needed"
    assert fake_openai.requests[0].body["model"] == "llama3:8b"


def test_the_users_base_url_wins_over_the_options(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    fake_openai.queue(text("Hi."))
    with OpenAIProvider("m", {"base_url": "http://127.0.0.1:9/v1"}) as provider:
        assert provider.complete(HELLO, []).content == "Hi."


def test_api_key_env_names_another_variable(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-other-key")
    fake_openai.queue(text("Hi."))
    with OpenAIProvider("m", {"base_url": fake_openai.base_url, "api_key_env": "GROQ_API_KEY"}) as provider:
        provider.complete(HELLO, [])
    assert fake_openai.requests[0].headers["authorization"] == "Bearer gsk-other-key"


def test_no_key_and_no_server_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="OPENAI_API_KEY is not set") as caught:
        OpenAIProvider("gpt-4o-mini")
    assert caught.value.hint is not None
    assert "OPENAI_BASE_URL" in caught.value.hint


def test_a_model_name_is_required(openai_env: FakeOpenAI) -> None:
    with pytest.raises(UsageError, match="needs a model name"):
        OpenAIProvider("")


FAULTS = [
    pytest.param(error(401, "bad key"), ModelAuthError, "refused the credentials", id="401"),
    pytest.param(error(403, "not allowed"), ModelAuthError, "refused the credentials", id="403"),
    pytest.param(error(404, "no model named nope"), ModelRequestError, "no model named nope", id="404"),
    pytest.param(error(400, "context too long"), ModelRequestError, "context too long", id="400"),
    pytest.param(error(429, "slow down"), ModelRateLimitError, "rate-limiting", id="429"),
    pytest.param(error(500, "kaput"), ModelServerError, "failed: kaput (HTTP 500)", id="500"),
    pytest.param(error(503, "busy"), ModelServerError, "HTTP 503", id="503"),
    pytest.param(fault("drop"), ModelConnectionError, "cannot reach", id="drop"),
    pytest.param(fault("cut"), ModelConnectionError, "broke off", id="cut-mid-stream"),
    pytest.param(fault("truncate"), ModelConnectionError, "ended before the reply was complete", id="truncated"),
    pytest.param(fault("error_event"), ModelServerError, "reported an error", id="error-event"),
    pytest.param(fault("garbage"), ModelResponseError, "malformed stream", id="garbage"),
]


@pytest.mark.parametrize(("reply", "expected", "words"), FAULTS)
def test_each_failure_is_our_error_in_one_line(
    openai_env: FakeOpenAI, make: Make, reply: Any, expected: type[ProviderError], words: str
) -> None:
    openai_env.queue(reply)

    with pytest.raises(ProviderError) as caught:
        make(max_retries=0).complete(HELLO, [])

    err = caught.value
    assert type(err) is expected
    assert words in err.message
    assert err.format().startswith("error: ")
    assert "\n" not in err.format()
    assert err.hint
    assert err.__cause__ is not None or reply.fault == "truncate"  # SDK errors are chained


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        pytest.param(fault("hang"), "did not answer within 0.3s", id="no-answer"),
        pytest.param(fault("stall"), "stopped sending the reply for 0.3s", id="stalls-mid-stream"),
    ],
)
def test_time_outs(openai_env: FakeOpenAI, make: Make, reply: Any, words: str) -> None:
    openai_env.queue(reply)
    with pytest.raises(ModelTimeoutError, match=words):
        make(timeout=0.3, max_retries=2).complete(HELLO, [])
    assert len(openai_env.requests) == 1  # a time-out is not retried: it would multiply the wait


def test_retries_429_and_500_then_succeeds(openai_env: FakeOpenAI, make: Make, waits: list[float]) -> None:
    openai_env.queue(error(429, headers={"Retry-After": "3"}), error(500), text("At last."))

    reply = make(max_retries=3).complete(HELLO, [])

    assert reply.content == "At last."
    assert len(openai_env.requests) == 3
    assert waits[0] == 3.0  # the server's Retry-After, honoured
    assert 1.0 <= waits[1] <= 2.0  # second retry: backoff of 2s with jitter


def test_retry_after_ms_is_honoured(openai_env: FakeOpenAI, make: Make, waits: list[float]) -> None:
    openai_env.queue(error(429, headers={"retry-after-ms": "250"}), text("ok"))
    assert make().complete(HELLO, []).content == "ok"
    assert waits == [0.25]


def test_backoff_grows_and_gives_up(openai_env: FakeOpenAI, make: Make, waits: list[float]) -> None:
    openai_env.queue(*[error(500, "down")] * 4)

    with pytest.raises(ModelServerError, match=r"gave up after 4 attempts") as caught:
        make(max_retries=3).complete(HELLO, [])

    assert len(openai_env.requests) == 4
    assert [lo <= w <= hi for w, (lo, hi) in zip(waits, [(0.5, 1), (1, 2), (2, 4)], strict=True)] == [True] * 3
    assert "\n" not in caught.value.format()


def test_a_wait_past_the_cap_fails_at_once(openai_env: FakeOpenAI, make: Make, waits: list[float]) -> None:
    openai_env.queue(error(429, headers={"Retry-After": "3600"}), text("never"))
    with pytest.raises(ModelRateLimitError, match="asked to wait 3600s"):
        make().complete(HELLO, [])
    assert waits == []


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(error(401), id="401"),
        pytest.param(error(400), id="400"),
        pytest.param(error(429, code="insufficient_quota"), id="no-quota"),
        pytest.param(fault("cut"), id="text-already-shown"),
    ],
)
def test_no_retry_when_it_cannot_help(openai_env: FakeOpenAI, make: Make, waits: list[float], reply: Any) -> None:
    openai_env.queue(reply, text("should not be asked for"))
    with pytest.raises(ProviderError):
        make(max_retries=3).complete(HELLO, [], on_text=lambda _: None)
    assert len(openai_env.requests) == 1
    assert waits == []


def test_an_unreachable_server_is_retried_then_reported(monkeypatch: pytest.MonkeyPatch, waits: list[float]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with OpenAIProvider("m", {"base_url": f"http://127.0.0.1:{port}/v1", "max_retries": 2}) as provider:
        provider.sleep = waits.append
        with pytest.raises(ModelConnectionError, match="cannot reach the model server") as caught:
            provider.complete(HELLO, [])
    assert len(waits) == 2
    assert "gave up after 3 attempts" in caught.value.message


def test_the_provider_stays_usable_after_a_failure(openai_env: FakeOpenAI, make: Make) -> None:
    openai_env.queue(fault("cut"), text("Fine now."))
    provider = make(max_retries=0)
    with pytest.raises(ModelConnectionError):
        provider.complete(HELLO, [])
    assert provider.complete(HELLO, []).content == "Fine now."


def test_a_key_echoed_by_the_server_is_blanked_out(openai_env: FakeOpenAI, make: Make) -> None:
    openai_env.queue(error(401, f"Incorrect API key provided: {FAKE_KEY}"))
    with pytest.raises(ModelAuthError) as caught:
        make().complete(HELLO, [])
    assert FAKE_KEY not in caught.value.format()
    assert "***" in caught.value.message


def test_credentials_cannot_be_written_in_options(openai_env: FakeOpenAI) -> None:
    with pytest.raises(UsageError, match="'api_key' is not allowed"):
        OpenAIProvider("m", {"api_key": "sk-in-a-document"})


# -- assembly details that the fake server does not exercise -------------------------


def _chunk(delta: dict[str, Any], finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def test_assembly_tolerates_a_repeated_name_and_a_missing_id() -> None:
    reply = _Assembly()
    shown: list[str] = []
    for part in ['{"command"', ': "ls"}']:
        delta = {"tool_calls": [{"index": 0, "function": {"name": "shell_run", "arguments": part}}]}
        reply.add(_chunk(delta), shown.append)
    reply.add(_chunk({}, "tool_calls"), shown.append)

    (call,) = reply.completion("m").tool_calls
    assert (call.id, call.name, call.arguments) == ("call_0", "shell_run", {"command": "ls"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", {}), ("  ", {}), ('{"a": [1, 2]}', {"a": [1, 2]})],
)
def test_tool_arguments_parse(raw: str, expected: dict[str, Any]) -> None:
    assert parse_arguments("f", raw) == expected


@pytest.mark.parametrize(
    "raw",
    ['{"a": ', "[1, 2]", '"text"', '{"timeout": NaN}', '{"a": -Infinity}', '{"a": ' + "[" * 100_000],
    ids=["broken", "array", "string", "nan", "infinity", "too-deep-to-read"],
)
def test_tool_arguments_that_are_not_a_json_object_are_an_error(raw: str) -> None:
    with pytest.raises(ModelResponseError, match="the model called f with arguments"):
        parse_arguments("f", raw)


# -- every SDK error has a translation -------------------------------------------------

_REQUEST = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")

EXPECTED: dict[str, tuple[type[ProviderError], int | None]] = {
    "APIError": (ModelServerError, None),
    "APIConnectionError": (ModelConnectionError, None),
    "APITimeoutError": (ModelTimeoutError, None),
    "APIResponseValidationError": (ModelResponseError, 200),
    "APIStatusError": (ModelRequestError, 418),
    "BadRequestError": (ModelRequestError, 400),
    "AuthenticationError": (ModelAuthError, 401),
    "OAuthError": (ModelAuthError, 401),
    "PermissionDeniedError": (ModelAuthError, 403),
    "NotFoundError": (ModelRequestError, 404),
    "ConflictError": (ModelRequestError, 409),
    "UnprocessableEntityError": (ModelRequestError, 422),
    "RateLimitError": (ModelRateLimitError, 429),
    "InternalServerError": (ModelServerError, 500),
}


def _instance(cls: type[openai.APIError], status: int | None) -> openai.APIError:
    response = httpx2.Response(status or 200, request=_REQUEST, json={"error": {"message": "boom"}})
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    for name in params:
        if name in ("message", "err_msg"):
            kwargs[name] = "boom"
        elif name == "request":
            kwargs[name] = _REQUEST
        elif name == "response":
            kwargs[name] = response
        elif name == "body":
            kwargs[name] = {"error": {"message": "boom"}}
    return cls(**kwargs)


def test_every_sdk_api_error_has_a_translation(openai_env: FakeOpenAI) -> None:
    exported = {
        name
        for name, obj in vars(openai._exceptions).items()
        if isinstance(obj, type) and issubclass(obj, openai.APIError) and not name.startswith("_")
    }
    assert exported == set(EXPECTED), "a new openai error class: decide how it translates, then add it here"
    with OpenAIProvider("m") as provider:
        for name, (ours, status) in EXPECTED.items():
            translated = provider.translate(_instance(getattr(openai, name), status))
            assert type(translated) is ours, name
            assert "\n" not in translated.format()


def test_the_sdk_sends_what_the_fake_server_expects(openai_env: FakeOpenAI, make: Make) -> None:
    """Guards the fake itself: a request it cannot parse would make every other test meaningless."""
    openai_env.queue(text("ok"))
    make().complete(HELLO, [])
    request = openai_env.requests[0]
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert json.loads(request.raw) == request.body
