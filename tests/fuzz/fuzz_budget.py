"""How many inputs the fuzz tests run, and how many they did run.

The default budget keeps the fuzz tests well under a minute. ``--run-slow``
(when the suite offers it) multiplies every budget by :data:`SLOW_FACTOR`;
``DOMARKX_FUZZ_EXAMPLES=N`` sets every budget to N. ``conftest.py`` prints the
counts at the end of the session, whatever pytest's ``-r`` flags say.
"""

from __future__ import annotations

import os
from collections import Counter

SLOW_FACTOR = 50
COUNTS: Counter[str] = Counter()
_factor = 1


def configure(*, slow: bool) -> None:
    global _factor
    _factor = SLOW_FACTOR if slow else 1


def examples(base: int) -> int:
    """The number of examples a test whose default budget is ``base`` runs."""
    fixed = os.environ.get("DOMARKX_FUZZ_EXAMPLES")
    return int(fixed) if fixed else base * _factor


def ran(target: str, outcome: str) -> None:
    """Count one input: ``target`` is what was fuzzed, ``outcome`` what became of the input."""
    COUNTS[f"{target}: {outcome}"] += 1
