"""``domarkx prune``: give back the disk space nothing needs any more.

In order, each step freeing what the one before it let go:

1. what killed processes left (pending workspaces, stray resource directories,
   stale locks: :func:`domarkx.session.doctor.sweep`);
2. workspace versions nothing links (no instance's head, initial version or
   assistant message, no committed snapshot, no workspace's current state);
3. each plugin's stored versions that no remaining workspace version and no
   resource names (:meth:`Plugin.collect`: git objects, backups, images);
4. blobs nothing references, and partial writes (:meth:`Store.prune`);
5. the database's free pages (``VACUUM``).

Steps 1–3 run only while no other domarkx is creating, removing or committing
a workspace (the provisioning lease, taken exclusively): a version committed
but not yet recorded is never taken for garbage. A dry run counts what it
can without deleting; what only a plugin can measure by deleting (its own
version store) is not counted, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domarkx import _entrypoints
from domarkx.data.store import Store
from domarkx.errors import DomarkxError
from domarkx.session.doctor import BUSY, leftovers
from domarkx.workspace.manager import WorkspaceManager


@dataclass
class PruneReport:
    """What ``prune`` freed (or, dry, would free), step by step."""

    dry_run: bool
    leftovers: list[str] = field(default_factory=list)
    versions: int = 0
    """Workspace versions dropped."""
    plugins: dict[str, int] = field(default_factory=dict)
    """Bytes each plugin's :meth:`~Plugin.collect` freed."""
    blobs: int = 0
    blob_bytes: int = 0
    database_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return self.blob_bytes + self.database_bytes + sum(self.plugins.values())


def prune(store: Store, *, dry_run: bool = False) -> PruneReport:
    """Free what nothing needs; with ``dry_run``, only count it. Safe while other domarkx processes run."""
    report = PruneReport(dry_run=dry_run)
    with store.quiescent() as free:
        if free:
            workspaces = WorkspaceManager(store)
            report.leftovers = leftovers(workspaces, remove=not dry_run)
            dropped = store.versions.drop_unlinked(dry_run=dry_run)
            report.versions = len(dropped)
            if dry_run:
                report.notes.append("a dry run does not count what plugins would collect (git objects, images)")
            else:
                _collect(workspaces, {kind for row in dropped for kind in row.types.values()}, report)
        else:
            report.notes.append(BUSY + "; stored versions were not collected")
    report.blobs, report.blob_bytes = store.prune(dry_run=dry_run)
    report.database_bytes = store.vacuum(dry_run=dry_run)
    return report


def _collect(workspaces: WorkspaceManager, dropped: set[str], report: PruneReport) -> None:
    """Ask every plugin that stored something here to drop the versions nothing names any more.

    ``dropped``: the plugin types of the workspace versions just dropped (they may have no live one left).
    """
    store = workspaces.store
    live = store.versions.resource_versions()
    for plugin_type, versions in store.workspaces.live_versions().items():
        live.setdefault(plugin_type, set()).update(versions)
    owners = {o.removeprefix("plugin:") for found in store.blob_owners().values() for o in found}
    stored_here = {p.name for p in (store.home / "plugins").glob("*")} | set(live) | dropped | owners
    for plugin_type in sorted(stored_here & set(_entrypoints.names(_entrypoints.PLUGINS))):
        try:
            report.plugins[plugin_type] = workspaces.plugin(plugin_type).collect(live.get(plugin_type, set()))
        except DomarkxError as exc:
            report.notes.append(f"{plugin_type} versions were not collected: {exc.message}")
