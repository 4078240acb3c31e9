"""Content addressing, done in one place.

Every id domarkx derives from content is ``sha256:`` followed by the hex digest of
canonical bytes. Structured content is first turned into canonical JSON: keys
sorted, no insignificant whitespace, UTF-8, non-ASCII kept as is. ``docs/store.md``
states exactly what each kind of object hashes.
"""

from __future__ import annotations

import re
from typing import Any

PREFIX = "sha256:"
_HEX_RE = re.compile(r"[0-9a-f]{64}")


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` so that equal values always give equal bytes."""
    import json  # here, not at the top: listing commands use this module and never hash (start-up time)

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def digest_bytes(data: bytes) -> str:
    """The tagged digest of raw bytes."""
    import hashlib  # here, not at the top: OpenSSL's start-up is a tenth of a quick command's time

    return PREFIX + hashlib.sha256(data).hexdigest()


def digest_json(value: Any) -> str:
    """The tagged digest of a JSON-able value's canonical form."""
    return digest_bytes(canonical_json(value))


def is_digest(text: str) -> bool:
    """Whether ``text`` is a complete tagged digest."""
    return text.startswith(PREFIX) and bool(_HEX_RE.fullmatch(text[len(PREFIX) :]))


def short(digest: str, length: int = 12) -> str:
    """The short hex form shown in listings, like Docker's 12-character ids."""
    return digest.removeprefix(PREFIX)[:length]
