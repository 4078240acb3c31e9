"""Plain data: what JSON stores exactly, so what is parsed equals what is stored.

Configs, metadata and tool-call arguments come from YAML, from JSON readers
that accept more than JSON (NaN, ±Infinity), or from a model; the store keeps
them as JSON. Anything JSON would change or cannot hold — sets, bytes, dates,
non-string keys, NaN and the infinities, integers too long to write back, nesting deeper than the JSON, YAML and
pydantic code that handles it can recurse — is refused where it comes in.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

MAX_DEPTH = 64
"""How deeply lists and mappings may nest; no real config or tool call comes close."""
MAX_VALUES = 200_000
"""How many values the data may hold once YAML aliases are expanded (a "billion laughs" guard)."""
MAX_INT_DIGITS = 4300
"""The longest integer, in decimal digits, that Python turns into JSON text (``sys.int_info``'s default)."""
_INT_LIMIT = 10**MAX_INT_DIGITS

_SCALARS = (str, int, float, type(None))


class Problem(NamedTuple):
    """Why a value is not plain data, and what to do about it."""

    problem: str
    hint: str


def problem(value: Any) -> Problem | None:
    """What keeps ``value`` from being plain JSON data, or ``None`` if it is.

    Walks without recursion, counting shared (aliased) values each time they are
    reached, since that is how a JSON writer will see them.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return Problem(
                f"expands to more than {MAX_VALUES} values",
                "YAML aliases (*name) that repeat large values multiply; write the data out plainly",
            )
        if isinstance(item, float) and not math.isfinite(item):
            return Problem(f"holds {item}, which JSON cannot store", "write null, or the number as a string")
        if isinstance(item, int) and not -_INT_LIMIT < item < _INT_LIMIT:
            return Problem(f"holds an integer of more than {MAX_INT_DIGITS} digits", "write the number as a string")
        if isinstance(item, _SCALARS):
            continue
        if not isinstance(item, dict | list):
            return Problem(
                f"holds a value that is not plain data ({type(item).__name__})",
                "use strings, numbers, booleans, null, lists and mappings only",
            )
        if depth >= MAX_DEPTH and item:
            return Problem(f"nests lists or mappings more than {MAX_DEPTH} levels deep", "flatten the data")
        if isinstance(item, dict):
            bad = next((key for key in item if not isinstance(key, str)), None)
            if bad is not None:
                return Problem(f"has a key that is not a string: {bad!r}", f"quote it: '{bad}':")
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)
    return None
