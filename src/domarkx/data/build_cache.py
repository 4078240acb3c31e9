"""The build cache: executions this store performed, so ``run`` reuses them like ``docker build``.

An entry says: starting from workspace version ``parent``, executing what
``key`` digests (session.execute says exactly what) made version ``result``,
and each block and tool call gave these results. Entries are written only
after a message really ran here, never from what a document claims, and only
while both versions are stored: a foreign key with ``ON DELETE CASCADE`` drops
an entry when ``prune`` drops either version, so the cache alone never keeps a
version alive (docs/store.md).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from domarkx.data.store import Store


class CacheEntry(NamedTuple):
    """One message's execution: from ``parent`` to ``result``, with what each step returned."""

    key: str
    parent: str
    result: str
    steps: list[dict[str, Any]]
    """One JSON object per block or tool call, in the order they ran."""


class BuildCache:
    """The ``build_cache`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` if both of its versions are still stored."""
        rows = self.store.query(
            "SELECT c.parent, c.result, c.steps FROM build_cache c"
            " JOIN workspace_versions p ON p.id = c.parent JOIN workspace_versions r ON r.id = c.result"
            " WHERE c.key = ?",
            (key,),
        )
        if not rows:
            return None
        parent, result, steps = rows[0]
        return CacheEntry(key, parent, result, json.loads(steps))

    def put(self, entry: CacheEntry) -> None:
        """Record an execution (replacing an older one of the same key: the newest run wins)."""
        with self.store.write() as db:
            db.execute(
                "INSERT OR REPLACE INTO build_cache(key, parent, result, steps, created) VALUES (?, ?, ?, ?, ?)",
                (entry.key, entry.parent, entry.result, json.dumps(entry.steps), time.time()),
            )

    def count(self) -> int:
        return int(self.store.query("SELECT COUNT(*) FROM build_cache")[0][0])
