"""The pieces every HTTP provider shares: Retry-After, one-line messages, the retry loop."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from domarkx.errors import ModelAuthError, ModelServerError
from domarkx.llm import _http


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert _http.retry_after(headers) == expected


def test_retry_after_as_a_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    wait = _http.retry_after({"retry-after": when})
    assert wait is not None
    assert 100 < wait <= 120


def test_one_line_squeezes_cuts_and_blanks_secrets() -> None:
    message = "bad key sk-secret-1\n  try   again " + "x" * 400
    line = _http.one_line(message, secrets=["sk-secret-1"])
    assert "\n" not in line
    assert "sk-secret-1" not in line
    assert line.startswith("bad key *** try again x")
    assert len(line) == 300


def test_with_retries_stops_at_the_first_success() -> None:
    outcomes: list[Exception | str] = [ModelServerError("down"), ModelServerError("down"), "ok"]
    waits: list[float] = []

    def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert _http.with_retries(attempt, max_retries=5, sleep=waits.append, rng=random.Random(1)) == "ok"
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0


def test_with_retries_never_retries_what_is_not_retryable() -> None:
    calls = 0

    def attempt() -> str:
        nonlocal calls
        calls += 1
        raise ModelAuthError("no")

    with pytest.raises(ModelAuthError):
        _http.with_retries(attempt, max_retries=5, sleep=lambda _: None)
    assert calls == 1


def test_backoff_is_capped() -> None:
    assert _http.backoff(20, random.Random(0)) <= _http.BACKOFF_CAP


def test_each_retry_is_announced_before_its_wait() -> None:
    limited = _http.status_error(429, "slow down", server="http://127.0.0.1:9", key_env="K", wait=2.0)
    outcomes: list[Exception | str] = [limited, ModelServerError("down"), "ok"]
    seen: list[str] = []
    events: list[str] = []

    def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with _http.retry_notices(lambda note: events.append(f"notice: {note}")):
        result = _http.with_retries(attempt, max_retries=3, sleep=lambda s: events.append(f"sleep {s}"))
    assert result == "ok"
    assert events[0] == "notice: retrying in 2 s (429)…"
    assert events[1] == "sleep 2.0"
    assert events[2].startswith("notice: retrying in ") and events[2].endswith(" s (server error)…")
    # outside the block nobody listens, and nothing breaks
    outcomes[:] = [ModelServerError("down"), "ok"]
    assert _http.with_retries(attempt, max_retries=1, sleep=seen.append) == "ok"


def test_status_errors_carry_their_status() -> None:
    for status in (401, 429, 500, 503, 404):
        assert _http.status_error(status, "x", server="s", key_env="K").status == status


def test_reachable_names_a_dead_server_and_accepts_a_live_one(fake_openai) -> None:  # type: ignore[no-untyped-def]
    import socket

    from domarkx.errors import ModelConnectionError

    _http.reachable(fake_openai.base_url, url_hint="OPENAI_BASE_URL")  # listening: no error
    with socket.socket() as probe:  # a port nothing listens on once this socket closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ModelConnectionError, match=rf"cannot reach the model server at http://127.0.0.1:{port}/v1"):
        _http.reachable(f"http://127.0.0.1:{port}/v1", url_hint="OPENAI_BASE_URL")


def test_reachable_leaves_proxied_servers_to_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    _http.reachable("https://api.example.invalid/v1", url_hint="OPENAI_BASE_URL")  # no lookup, no error
