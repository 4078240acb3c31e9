"""API keys, read where the commands domarkx starts cannot read them.

Providers ask :func:`get` for a key variable instead of reading ``os.environ``.
"""

from __future__ import annotations

import os

_held: dict[str, str] = {}


def get(name: str) -> str | None:
    """The value of key variable ``name``: handed over at start-up, else from the environment."""
    return _held.get(name) or os.environ.get(name) or None
