"""Every error a user can see.

The tree, so the CLI can map each branch to an exit code::

    DomarkxError                 runtime failure (exit 1)
    ├── UsageError               bad arguments or input (exit 2)
    │   ├── DocumentError        a document problem with a position: path:line:col
    │   ├── ReferenceNotFound    no snapshot or instance matches a reference
    │   ├── AmbiguousReference   a prefix that matches more than one object
    │   └── PathEscapeError      a path that leaves the tree it must stay in
    ├── StoreError               the store on disk is damaged or unreadable
    └── ProviderError            a model call failed; the conversation so far is kept
        ├── ModelConnectionError     the server could not be reached, or its stream broke
        │   └── ModelTimeoutError    no answer within the time-out
        ├── ModelAuthError           401/403: the API key is missing, wrong or not allowed
        ├── ModelRateLimitError      429, still after the retries
        ├── ModelServerError         5xx (still after the retries), or an error event
        ├── ModelRequestError        another 4xx: unknown model, context too long, …
        └── ModelResponseError       a reply domarkx cannot use (malformed stream, bad tool arguments)

Errors from dependencies (sqlite3, yaml, json, openai, …) are translated at the boundary
into one of these with ``raise … from exc``; anything else reaching the CLI is a bug.
"""

from __future__ import annotations

import re

_LINE_BREAKS = re.compile(r"[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")  # what str.splitlines() splits at


def one_line(text: str) -> str:
    """``text`` with its line breaks escaped (``\\n``): a message that quotes what a user wrote stays one line."""
    return _LINE_BREAKS.sub(lambda m: repr(m.group())[1:-1], text)


class DomarkxError(Exception):
    """Root of every error domarkx reports to a user (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        """The one line the CLI prints (the hint follows on its own line)."""
        return f"error: {self.message}"


class UsageError(DomarkxError):
    """The user asked for something that cannot be done as asked (exit code 2)."""

    exit_code = 2


class DocumentError(UsageError):
    """A problem at a known place in a document; formats as ``path:line:col: error: …``."""

    def __init__(
        self,
        message: str,
        *,
        path: str = "<stdin>",
        line: int = 1,
        col: int = 1,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.line = line
        self.col = col

    def format(self) -> str:
        return f"{one_line(self.path)}:{self.line}:{self.col}: error: {one_line(self.message)}"


class ReferenceNotFound(UsageError):
    """No stored object answers to a reference."""


class AmbiguousReference(UsageError):
    """A reference prefix that more than one object answers to."""


class PathEscapeError(UsageError):
    """A path that would leave the directory tree it is confined to."""


class StoreError(DomarkxError):
    """The store is damaged, locked beyond patience, or unreadable."""


class ProviderError(DomarkxError):
    """A model provider call failed; the caller keeps the conversation and may try again.

    ``retryable`` says whether sending the same request again may succeed; a
    provider clears it once part of a reply has been shown, so a retry never
    prints text twice. ``retry_after`` is the wait the server asked for, in seconds.
    """

    retryable = False
    status: int | None = None
    """The HTTP status the server answered with, when there was one."""

    def __init__(self, message: str, *, hint: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class ModelConnectionError(ProviderError):
    """The model server could not be reached, or the connection broke mid-reply."""

    retryable = True


class ModelTimeoutError(ModelConnectionError):
    """The model server did not answer within the time-out (not retried: it would multiply the wait)."""

    retryable = False


class ModelAuthError(ProviderError):
    """The server refused the credentials (HTTP 401 or 403)."""


class ModelRateLimitError(ProviderError):
    """The server is rate-limiting us (HTTP 429)."""

    retryable = True


class ModelServerError(ProviderError):
    """The server failed (HTTP 5xx) or reported an error inside a stream."""

    retryable = True


class ModelRequestError(ProviderError):
    """The server rejected the request itself (another 4xx): sending it again cannot help."""


class ModelResponseError(ProviderError):
    """The server answered with something domarkx cannot use."""
