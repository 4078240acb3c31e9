"""Every error a user can see.

The tree, so the CLI can map each branch to an exit code::

    DomarkxError                 runtime failure (exit 1)
    ├── UsageError               bad arguments or input (exit 2)
    │   ├── DocumentError        a document problem with a position: path:line:col
    │   ├── ReferenceNotFound    no snapshot or instance matches a reference
    │   ├── AmbiguousReference   a prefix that matches more than one object
    │   └── PathEscapeError      a path that leaves the tree it must stay in
    └── StoreError               the store on disk is damaged or unreadable

Errors from dependencies (sqlite3, yaml, json, …) are translated at the boundary
into one of these with ``raise … from exc``; anything else reaching the CLI is a bug.
"""

from __future__ import annotations


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
        return f"{self.path}:{self.line}:{self.col}: error: {self.message}"


class ReferenceNotFound(UsageError):
    """No stored object answers to a reference."""


class AmbiguousReference(UsageError):
    """A reference prefix that more than one object answers to."""


class PathEscapeError(UsageError):
    """A path that would leave the directory tree it is confined to."""


class StoreError(DomarkxError):
    """The store is damaged, locked beyond patience, or unreadable."""
