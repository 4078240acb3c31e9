"""What every HTTP-backed provider shares: error wording, ``Retry-After`` and the retry loop.

SDK retries are switched off (``max_retries=0``) so that one loop, here, decides:
it knows when a reply has already been partly shown (and must not be sent again),
it honours ``Retry-After``, its waits can be replaced in tests, and it says on
the terminal what it is waiting for (:func:`retry_notices`).
"""

from __future__ import annotations

import contextlib
import random
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import TypeVar
from urllib.parse import urlsplit

from domarkx.errors import (
    ModelAuthError,
    ModelConnectionError,
    ModelRateLimitError,
    ModelRequestError,
    ModelResponseError,
    ModelServerError,
    ModelTimeoutError,
    ProviderError,
)
from domarkx.llm.base import TextCallback

T = TypeVar("T")

BACKOFF_BASE = 1.0
"""Seconds before the first retry; doubled for each further one (with jitter)."""
BACKOFF_CAP = 30.0
"""No single wait is longer than this, unless the server asked for it with Retry-After."""
TOTAL_WAIT_CAP = 90.0
"""All waits of one call together; past this the error is raised rather than waited out."""
KEPT = "the conversation so far is kept"
PROBE_TIMEOUT = 5.0
"""Seconds :func:`reachable` waits for a model server to accept a connection."""

Notice = Callable[[str], None]
_notices: ContextVar[Notice | None] = ContextVar("domarkx_retry_notices", default=None)


@contextlib.contextmanager
def retry_notices(sink: Notice | None) -> Iterator[None]:
    """Inside this block, each retry is announced to ``sink`` before its wait (``retrying in 2 s (429)…``).

    A context variable rather than a parameter, so every provider built on
    :func:`with_retries` reports its waits without passing a callback along.
    """
    token = _notices.set(sink)
    try:
        yield
    finally:
        _notices.reset(token)


def _announce(delay: float, err: ProviderError) -> None:
    sink = _notices.get()
    if sink is None:
        return
    if err.status is not None:
        why = str(err.status)
    elif isinstance(err, ModelConnectionError):
        why = "no connection"
    else:
        why = "server error"
    sink(f"retrying in {delay:.0f} s ({why})…" if delay >= 1 else f"retrying in {delay:.1f} s ({why})…")


ODD_REPLY = f"send again ({KEPT}); if it keeps happening, the server may not be fully API-compatible"


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
    err = _status_error(status, f"{detail} (HTTP {status})", server=server, key_env=key_env, wait=wait)
    if status == 429 and code == "insufficient_quota":
        err.retryable = False
        err.hint = "the account behind this key has no quota left; waiting will not help"
    err.status = status
    return err


def _status_error(status: int, what: str, *, server: str, key_env: str, wait: float | None) -> ProviderError:
    if status in (401, 403):
        return ModelAuthError(
            f"the model server at {server} refused the credentials: {what}",
            hint=f"set {key_env} to a key this server accepts",
        )
    if status == 429:
        return ModelRateLimitError(
            f"the model server at {server} is rate-limiting requests: {what}",
            hint=f"wait a little and send again; {KEPT}",
            retry_after=wait,
        )
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
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
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
            _announce(delay, err)
            sleep(delay)
            waited += delay


def _note_attempts(err: ProviderError, failures: int) -> None:
    if failures > 1:
        err.message += f" (gave up after {failures} attempts)"
    err.args = (err.message,)


class Shown:
    """Passes reply text on to the caller and remembers whether any was shown (then no retry)."""

    def __init__(self, on_text: TextCallback | None) -> None:
        self.on_text = on_text
        self.any = False

    def __call__(self, text: str) -> None:
        self.any = True
        if self.on_text is not None:
            self.on_text(text)


def timeout_error(server: str, timeout: float, *, mid_stream: bool) -> ModelTimeoutError:
    waiting = "stopped sending the reply for" if mid_stream else "did not answer within"
    return ModelTimeoutError(
        f"the model server at {server} {waiting} {timeout:g}s",
        hint="raise model_options timeout, or try a smaller or faster model",
    )


def connection_error(server: str, cause: str, *, mid_stream: bool, url_hint: str) -> ModelConnectionError:
    if mid_stream:
        return ModelConnectionError(f"the reply stream from {server} broke off: {cause}", hint=f"send again; {KEPT}")
    return ModelConnectionError(
        f"cannot reach the model server at {server}: {cause}", hint=f"is the server running? check {url_hint}"
    )


def sdk_error(
    exc: Exception,
    sdk: ModuleType,
    *,
    server: str,
    key_env: str,
    url_hint: str,
    timeout: float,
    mid_stream: bool = False,
    secrets: Iterable[str] = (),
) -> ProviderError:
    """Our error for an error of an official SDK (``openai`` or ``anthropic``: they share a shape).

    The most specific class wins; the message is one line with no credential in it.
    """
    secrets = tuple(secrets)
    if isinstance(exc, sdk.APITimeoutError):
        return timeout_error(server, timeout, mid_stream=mid_stream)
    if isinstance(exc, sdk.APIConnectionError):
        cause = one_line(str(exc.__cause__ or exc.message), secrets=secrets)
        return connection_error(server, cause, mid_stream=mid_stream, url_hint=url_hint)
    detail = one_line(body_detail(getattr(exc, "body", None), str(exc)), secrets=secrets)
    if isinstance(exc, sdk.APIStatusError) and exc.status_code >= 400:
        return status_error(
            exc.status_code,
            detail,
            server=server,
            key_env=key_env,
            wait=retry_after(exc.response.headers),
            code=getattr(exc, "code", None),
        )
    if isinstance(exc, sdk.APIResponseValidationError):
        return ModelResponseError(
            f"the model server at {server} sent a reply that does not fit the API", hint=ODD_REPLY
        )
    if isinstance(exc, sdk.APIError):  # an error event inside a stream
        return ModelServerError(f"the model server at {server} reported an error: {detail}", hint=f"send again; {KEPT}")
    return ModelResponseError(f"the {sdk.__name__} SDK failed: {detail}", hint=ODD_REPLY)


def reachable(url: str, *, url_hint: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Fail now, with the error a call would give, if nothing accepts connections at ``url``.

    Only a TCP connection is tried: no request is sent, so no key travels and
    no server-specific endpoint is assumed. Through a proxy the proxy is what
    can be reached, so with one configured for ``url`` nothing is checked.
    """
    import urllib.request

    parts = urlsplit(url)
    host = parts.hostname
    if host is None or (parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host)):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # not a port number: the SDK's own call will say so
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except TimeoutError:
        raise connection_error(url, f"no answer within {timeout:g}s", mid_stream=False, url_hint=url_hint) from None
    except OSError as exc:
        cause = exc.strerror or str(exc)
        raise connection_error(url, cause, mid_stream=False, url_hint=url_hint) from None
