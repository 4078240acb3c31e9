"""Workspace versions: immutable aggregate states, ``{resource name: resource version}``.

A row holds the versions by resource name and the plugin type of each resource
(not hashed: the id is ``ids.digest_json(versions)``). Rows are only ever added
by a commit or load in this home, or brought in with their content (bundles);
``prune`` drops the ones nothing links any more.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from domarkx.data.store import Store


class VersionRow(NamedTuple):
    """One workspace version: each resource's version and plugin type, by resource name."""

    id: str
    versions: dict[str, str]
    types: dict[str, str]


class Versions:
    """The ``workspace_versions`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, version_id: str) -> VersionRow | None:
        rows = self.store.query("SELECT versions, types FROM workspace_versions WHERE id = ?", (version_id,))
        if not rows:
            return None
        return VersionRow(version_id, json.loads(rows[0][0]), json.loads(rows[0][1]))

    def exists(self, version_id: str) -> bool:
        return bool(self.store.query("SELECT 1 FROM workspace_versions WHERE id = ?", (version_id,)))

    def insert(self, row: VersionRow) -> None:
        """Store the version unless it is there already (ids are content digests)."""
        with self.store.write() as db:
            db.execute(
                "INSERT OR IGNORE INTO workspace_versions(id, versions, types, created) VALUES (?, ?, ?, ?)",
                (row.id, json.dumps(row.versions, sort_keys=True), json.dumps(row.types, sort_keys=True), time.time()),
            )

    def all(self) -> dict[str, VersionRow]:
        rows = self.store.query("SELECT id, versions, types FROM workspace_versions")
        return {r[0]: VersionRow(r[0], json.loads(r[1]), json.loads(r[2])) for r in rows}

    def linked(self) -> set[str]:
        """Every workspace version something links: an instance (head, initial, an assistant message),
        a committed snapshot's manifest, or a workspace's current state (a commit not yet linked)."""
        with self.store.read():
            found = set().union(*self.store.instances.linked_versions().values())
            for _id, manifest, _document in self.store.snapshots.manifests():
                state = manifest.get("workspace_state") or {}
                if isinstance(state.get("workspace_version"), str):
                    found.add(state["workspace_version"])
            found |= self.store.workspaces.current_workspace_versions()
        return found

    def drop_unlinked(self, *, dry_run: bool = False) -> list[VersionRow]:
        """Delete (or, dry, list) the versions nothing links; returns them."""
        with self.store.write() as db:
            linked = self.linked()
            dropped = [row for version_id, row in self.all().items() if version_id not in linked]
            if not dry_run:
                db.executemany("DELETE FROM workspace_versions WHERE id = ?", [(row.id,) for row in dropped])
        return dropped

    def resource_versions(self) -> dict[str, set[str]]:
        """Plugin type → every resource version the stored workspace versions name."""
        by_type: dict[str, set[str]] = {}
        for row in self.all().values():
            for name, version in row.versions.items():
                by_type.setdefault(row.types.get(name, ""), set()).add(version)
        return by_type
