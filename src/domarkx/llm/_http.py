"""What every HTTP-backed provider shares: error wording, ``Retry-After`` and the retry loop.

SDK retries are switched off (``max_retries=0``) so that one loop, here, decides:
it knows when a reply has already been partly shown (and must not be sent again),
it honours ``Retry-After``, and its waits can be replaced in tests.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from domarkx.errors import (
    ModelAuthError,
    ModelRateLimitError,
    ModelRequestError,
    ModelServerError,
    ProviderError,
)

T = TypeVar("T")

BACKOFF_BASE = 1.0
"""Seconds before the first retry; doubled for each further one (with jitter)."""
BACKOFF_CAP = 30.0
"""No single wait is longer than this, unless the server asked for it with Retry-After."""
TOTAL_WAIT_CAP = 90.0
"""All waits of one call together; past this the error is raised rather than waited out."""
KEPT = "the conversation so far is kept"


def one_line(text: str, *, secrets: Iterable[str] = (), limit: int = 300) -> str:
    """Squeeze a server's message onto one line, cut it short, and blank out any credential in it."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def body_detail(body: object, fallback: str) -> str:
    """The human part of an error body: ``{"error": {"message": …}}`` and its common variants."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            message = error.get("message")
            if isinstance(message, str) and message:
                return message
        if isinstance(error, str) and error:
            return error
    if isinstance(body, str) and body:
        return body
    return fallback


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, else ``retry-after`` (seconds or a date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def status_error(
    status: int,
    detail: str,
    *,
    server: str,
    key_env: str,
    wait: float | None = None,
    code: str | None = None,
) -> ProviderError:
    """The error for an HTTP error status from ``server`` (a URL), most specific class first."""
    what = f"{detail} (HTTP {status})"
    if status in (401, 403):
        return ModelAuthError(
            f"the model server at {server} refused the credentials: {what}",
            hint=f"set {key_env} to a key this server accepts",
        )
    if status == 429:
        err = ModelRateLimitError(
            f"the model server at {server} is rate-limiting requests: {what}",
            hint=f"wait a little and send again; {KEPT}",
            retry_after=wait,
        )
        if code == "insufficient_quota":
            err.retryable = False
            err.hint = "the account behind this key has no quota left; waiting will not help"
        return err
    if status >= 500:
        return ModelServerError(
            f"the model server at {server} failed: {what}",
            hint=f"send again later; {KEPT}",
            retry_after=wait,
        )
    return ModelRequestError(
        f"the model server at {server} rejected the request: {what}",
        hint="check the model name and model_options" if status in (400, 404, 422) else KEPT,
    )


def backoff(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with jitter, so that many clients don't retry in step."""
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * rng.uniform(0.5, 1.0))


def with_retries(
    attempt: Callable[[], T],
    *,
    max_retries: int,
    sleep: Callable[[float], None],
    rng: random.Random | None = None,
) -> T:
    """Call ``attempt`` until it succeeds, retrying errors marked ``retryable`` up to ``max_retries`` times.

    A ``Retry-After`` that would take the total wait past :data:`TOTAL_WAIT_CAP`
    ends the retries at once: waiting minutes silently is worse than saying so.
    """
    rng = rng or random.Random()
    waited = 0.0
    failures = 0
    while True:
        try:
            return attempt()
        except ProviderError as err:
            failures += 1
            if not err.retryable or failures > max_retries:
                _note_attempts(err, failures)
                raise
            delay = err.retry_after if err.retry_after is not None else backoff(failures - 1, rng)
            if waited + delay > TOTAL_WAIT_CAP:
                err.message += f"; the server asked to wait {delay:.0f}s more"
                _note_attempts(err, failures)
                raise
            sleep(delay)
            waited += delay


def _note_attempts(err: ProviderError, failures: int) -> None:
    if failures > 1:
        err.message += f" (gave up after {failures} attempts)"
    err.args = (err.message,)
