"""Workspace rows and their resources.

A workspace is a row (its config, its current version, whether an owner holds
it) and a resource row per resource: the plugin type that manages it (recorded,
never guessed), its config, its current version, whether a tool touched it
since, and where its tools work. The resources' state is the plugins' business.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from domarkx.errors import ReferenceNotFound

if TYPE_CHECKING:
    from domarkx.data.store import Store


class ResourceRow(NamedTuple):
    """One resource of a workspace, as stored."""

    id: str
    name: str
    type: str
    config: dict[str, Any]
    version: str | None = None
    touched: bool = True
    location: str | None = None


class InstanceResource(NamedTuple):
    """A resource of an instance's workspace, for ``doctor``'s check of state directories."""

    instance_id: str
    instance_name: str | None
    pending: bool
    resource: ResourceRow


_RESOURCE = "r.id, r.name, r.type, r.config, r.version, r.touched, r.location"


def _resource(row: Sequence[Any]) -> ResourceRow:
    rid, name, kind, config, version, touched, location = row
    return ResourceRow(rid, name, kind, json.loads(config), version, bool(touched), location)


class Workspaces:
    """The ``workspaces`` and ``resources`` tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def insert(self, workspace_id: str, config: str, resources: Sequence[ResourceRow], *, pending: bool) -> None:
        """Store a new workspace (``config`` is its JSON) and its resources, in order."""
        with self.store.write() as db:
            db.execute(
                "INSERT INTO workspaces(id, config, version, created, pending) VALUES (?, ?, NULL, ?, ?)",
                (workspace_id, config, time.time(), int(pending)),
            )
            db.executemany(
                "INSERT INTO resources(id, workspace_id, position, name, type, config, version, touched, location)"
                " VALUES (?, ?, ?, ?, ?, ?, NULL, 1, ?)",
                [
                    (r.id, workspace_id, i, r.name, r.type, json.dumps(r.config, sort_keys=True), r.location)
                    for i, r in enumerate(resources)
                ],
            )

    def claim(self, workspace_id: str, *, owned: bool = True) -> None:
        """The workspace has an owner now (or, ``owned=False``, no longer); join the owner's transaction."""
        with self.store.write() as db:
            db.execute("UPDATE workspaces SET pending = ? WHERE id = ?", (int(not owned), workspace_id))

    def delete(self, workspace_id: str) -> None:
        with self.store.write() as db:
            db.execute("DELETE FROM workspaces WHERE id = ?", (workspace_id,))

    def exists(self, workspace_id: str) -> bool:
        return bool(self.store.query("SELECT 1 FROM workspaces WHERE id = ?", (workspace_id,)))

    def resources(self, workspace_id: str) -> list[ResourceRow]:
        """The workspace's resources in config order; an error if there is no such workspace."""
        rows = self.store.query(
            f"SELECT {_RESOURCE} FROM workspaces w LEFT JOIN resources r ON r.workspace_id = w.id"  # noqa: S608
            " WHERE w.id = ? ORDER BY r.position",
            (workspace_id,),
        )
        if not rows:
            raise ReferenceNotFound(f"no workspace {workspace_id}")
        return [_resource(r) for r in rows if r[0] is not None]

    def config(self, workspace_id: str) -> str:
        """The JSON of the config the workspace was made from."""
        rows = self.store.query("SELECT config FROM workspaces WHERE id = ?", (workspace_id,))
        if not rows:
            raise ReferenceNotFound(f"no workspace {workspace_id}")
        return str(rows[0][0])

    def current_version(self, workspace_id: str) -> str | None:
        """The version last committed or loaded (None before the first commit)."""
        rows = self.store.query("SELECT version FROM workspaces WHERE id = ?", (workspace_id,))
        if not rows:
            raise ReferenceNotFound(f"no workspace {workspace_id}")
        version: str | None = rows[0][0]
        return version

    def touch(self, resource_id: str) -> None:
        """A tool is about to run on the resource: its next commit must ask the plugin."""
        with self.store.write() as db:
            db.execute("UPDATE resources SET touched = 1 WHERE id = ?", (resource_id,))

    def set_version(self, workspace_id: str, version_id: str, resource_versions: Sequence[tuple[str, str]]) -> None:
        """Make ``version_id`` the workspace's current one, and each (resource id, version) its resource's."""
        with self.store.write() as db:
            db.executemany(
                "UPDATE resources SET version = ?, touched = 0 WHERE id = ?",
                [(version, rid) for rid, version in resource_versions],
            )
            db.execute("UPDATE workspaces SET version = ? WHERE id = ?", (version_id, workspace_id))

    def pending(self) -> list[str]:
        """Workspaces no owner holds, oldest first."""
        return [r[0] for r in self.store.query("SELECT id FROM workspaces WHERE pending = 1 ORDER BY created")]

    def resource_ids(self) -> set[str]:
        return {r[0] for r in self.store.query("SELECT id FROM resources")}

    def live_versions(self) -> dict[str, set[str]]:
        """Plugin type → the resource versions its resources are at (``prune`` keeps them)."""
        live: dict[str, set[str]] = {}
        for kind, version in self.store.query("SELECT type, version FROM resources WHERE version IS NOT NULL"):
            live.setdefault(kind, set()).add(version)
        return live

    def current_workspace_versions(self) -> set[str]:
        return {r[0] for r in self.store.query("SELECT version FROM workspaces WHERE version IS NOT NULL")}

    def of_instances(self) -> list[InstanceResource]:
        """Every resource of every instance's workspace."""
        rows = self.store.query(
            f"SELECT i.id, i.name, w.pending, {_RESOURCE} FROM instances i"  # noqa: S608
            " JOIN workspaces w ON w.id = i.workspace_id JOIN resources r ON r.workspace_id = w.id"
            " ORDER BY i.id, r.position"
        )
        return [InstanceResource(r[0], r[1], bool(r[2]), _resource(r[3:])) for r in rows]
