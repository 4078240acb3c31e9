"""``domarkx doctor``: re-hash and cross-check the whole store.

It answers the question a user asks after a crash or a full disk: is everything
that was reported as created still intact? It finds two kinds of things.

*Problems* are damage. A referenced blob is missing or no longer hashes to its
name; a snapshot id is not the digest of its manifest; an instance has lost its
snapshot, its workspace, a resource's state directory, or a workspace version
it links (down to the resource versions the plugins keep: git commits and their
objects for ``local_shell``). Each names the snapshots and instances that need
the lost data. Doctor repairs none of them: the data is gone, and a guess would
only hide that.

*Leftovers* are what a killed process leaves by design, harmless but taking
space: partial blob writes in ``tmp/``, workspaces an interrupted ``run``,
``fork`` or ``instances rm`` left without an owner, and resource directories no
row names (and the lock files of instances that were never stored).
``--repair`` removes them. Workspaces and resource directories are
only judged while no other domarkx is creating or removing one
(:meth:`Store.quiescent`), so work in progress is never taken for a leftover.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from domarkx import ids
from domarkx.data.store import Store
from domarkx.errors import DomarkxError
from domarkx.session.instance import lock_name
from domarkx.workspace.manager import WorkspaceManager
from domarkx.workspace.plugin import resource_path


@dataclass
class Report:
    """What was checked, what is damaged, what is left over, and what ``--repair`` removed."""

    checked: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Intact: nothing is damaged (leftovers are not damage)."""
        return not self.problems


def check(store: Store, *, repair: bool = False) -> Report:
    """Check everything; with ``repair``, remove the leftovers. Safe while other domarkx processes run."""
    with store.read():  # rows committed meanwhile by others are not half-seen
        doctor = _Doctor(store)
        doctor.integrity()
        doctor.blobs()
        doctor.snapshots()
        doctor.instances()
        doctor.resource_versions()
    doctor.temp_files(repair)
    doctor.workspaces_on_disk(repair)
    return doctor.report


class _Doctor:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.report = Report()
        self.workspaces = WorkspaceManager(store)
        self.versions: dict[str, tuple[dict[str, str], dict[str, str]]] = {
            row[0]: (json.loads(row[1]), json.loads(row[2]))
            for row in store.db.execute("SELECT id, versions, types FROM workspace_versions")
        }
        self.made_from: dict[str, list[str]] = {}
        """snapshot id → the instances made from it (they need it to export)."""
        self.links = self._links()

    def _links(self) -> dict[str, set[str]]:
        """Who links which workspace versions: ``instance …`` and ``snapshot …`` labels."""
        links: dict[str, set[str]] = {}
        for row in self.store.db.execute("SELECT id, manifest FROM snapshots"):
            state = json.loads(row[1]).get("workspace_state") or {}
            if state.get("workspace_version"):
                links[_snapshot(row[0])] = {state["workspace_version"]}
        rows = self.store.db.execute(
            "SELECT id, name, snapshot_id, head_version, initial_version FROM instances"
        ).fetchall()
        for row in rows:
            self.made_from.setdefault(row["snapshot_id"], []).append(_instance(row["id"], row["name"]))
            linked = {row["head_version"], row["initial_version"]}
            for (body,) in self.store.db.execute("SELECT body FROM messages WHERE instance_id = ?", (row["id"],)):
                linked.add(json.loads(body).get("workspace_version"))
            links[_instance(row["id"], row["name"])] = {v for v in linked if v}
        return links

    def problem(self, text: str) -> None:
        if text not in self.report.problems:
            self.report.problems.append(text)

    # -- the checks ------------------------------------------------------------------

    def integrity(self) -> None:
        result = self.store.db.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            self.problem(f"SQLite integrity check failed: {result}")

    def blobs(self) -> None:
        rows = self.store.db.execute("SELECT digest, group_concat(owner, ' ') FROM blob_refs GROUP BY digest")
        count = 0
        for digest, owners in rows.fetchall():
            count += 1
            if self.store.verify_blob(digest):
                continue
            state = "missing" if not self.store.blob_path(digest).exists() else "corrupt (its bytes no longer match)"
            self.problem(f"blob {digest} is {state}; needed by {', '.join(self._needing(digest, owners.split()))}")
        self.report.checked["blobs"] = count

    def _needing(self, digest: str, owners: list[str]) -> list[str]:
        """The snapshots and instances that need a blob, directly or as a resource version."""
        snapshots = sorted(o for o in owners if o.startswith(ids.PREFIX))
        needing = [_snapshot(o) for o in snapshots] + sorted(i for o in snapshots for i in self.made_from.get(o, ()))
        holding = {v for v, (versions, _types) in self.versions.items() if digest in versions.values()}
        needing += sorted(label for label, linked in self.links.items() if linked & holding)
        return list(dict.fromkeys(needing)) or [o for o in owners if not o.startswith(ids.PREFIX)]

    def snapshots(self) -> None:
        rows = self.store.db.execute("SELECT id, manifest, document FROM snapshots").fetchall()
        self.report.checked["snapshots"] = len(rows)
        for row in rows:
            manifest = json.loads(row["manifest"])
            label = _snapshot(row["id"])
            if ids.digest_json(manifest) != row["id"]:
                self.problem(f"{label}: its id does not match its manifest")
            if manifest.get("document") != row["document"]:
                self.problem(f"{label}: its manifest names another document blob")
            self._linked_versions(label)

    def instances(self) -> None:
        rows = self.store.db.execute("SELECT id, name, snapshot_id, workspace_id FROM instances").fetchall()
        self.report.checked["instances"] = len(rows)
        snapshots = {r[0] for r in self.store.db.execute("SELECT id FROM snapshots")}
        for row in rows:
            label = _instance(row["id"], row["name"])
            if row["snapshot_id"] not in snapshots:
                self.problem(f"{label}: its snapshot {row['snapshot_id']} is gone")
            found = self.store.db.execute("SELECT 1 FROM workspaces WHERE id = ?", (row["workspace_id"],)).fetchone()
            if found is None:
                self.problem(f"{label}: its workspace {row['workspace_id']} is gone")
            self._linked_versions(label)

    def _linked_versions(self, label: str) -> None:
        for version in sorted(self.links.get(label, ())):
            if version not in self.versions:
                self.problem(f"{label}: workspace version {version} cannot be loaded: it is not in the store")

    def resource_versions(self) -> None:
        """Ask each plugin, once, which of the resource versions anything links it can no longer load."""
        wanted: dict[str, set[str]] = {}
        for linked in self.links.values():
            for version in linked & self.versions.keys():
                versions, types = self.versions[version]
                for name, resource_version in versions.items():
                    wanted.setdefault(types[name], set()).add(resource_version)
        missing: set[tuple[str, str]] = set()
        for plugin_type, asked in sorted(wanted.items()):
            try:
                lost = self.workspaces.plugin(plugin_type).missing_versions(asked)
            except DomarkxError as exc:
                self.report.notes.append(f"{plugin_type} versions were not checked: {exc.message}")
                continue
            missing |= {(plugin_type, v) for v in lost}
        self.report.checked["resource versions"] = sum(len(v) for v in wanted.values())
        for label, linked in sorted(self.links.items()):
            for version in sorted(linked & self.versions.keys()):
                versions, types = self.versions[version]
                for name, resource_version in sorted(versions.items()):
                    if (types[name], resource_version) in missing:
                        self.problem(
                            f"{label}: workspace version {version} cannot be loaded:"
                            f" {types[name]} version {resource_version} (resource {name}) is missing"
                        )

    # -- leftovers ---------------------------------------------------------------------

    def temp_files(self, repair: bool) -> None:
        # Blobs are written to tmp/ inside a write transaction: holding one, every file there is a leftover.
        with self.store.write():
            leftovers = list(self.store.tmp.iterdir())
            if leftovers and repair:
                for path in leftovers:
                    path.unlink(missing_ok=True)
        if not leftovers:
            return
        found = f"{len(leftovers)} partial write(s) in {self.store.tmp}"
        if repair:
            self.report.repaired.append(f"removed {found}")
        else:
            self.report.leftovers.append(f"{found}, left by an interrupted command")

    def workspaces_on_disk(self, repair: bool) -> None:
        """Resource directories of instances, and what killed processes left: judged only when no one is mid-way."""
        with self.store.quiescent() as free:
            if not free:
                self.report.notes.append(BUSY)
                return
            self._resource_directories()
            found = _abandoned(self.workspaces, remove=repair)
        if repair:
            self.report.repaired += [f"removed {line}" for line in found]
        else:
            self.report.leftovers += found

    def _resource_directories(self) -> None:
        rows = self.store.db.execute(
            "SELECT i.id, i.name, w.pending, r.id AS resource, r.name AS resource_name, r.type FROM instances i"
            " JOIN workspaces w ON w.id = i.workspace_id JOIN resources r ON r.workspace_id = w.id"
        ).fetchall()
        for row in rows:
            label = _instance(row["id"], row["name"])
            if row["pending"]:
                self.problem(f"{label}: its workspace is marked as being removed")
            if not resource_path(self.store.home, row["resource"]).is_dir():
                self.problem(f"{label}: resource {row['resource_name']} ({row['type']}) has lost its state directory")


BUSY = "another domarkx is creating or removing a workspace: workspaces on disk were not checked"


def sweep(store: Store, *, dry_run: bool = False) -> list[str] | None:
    """Remove (or, dry, list) the workspaces and resource directories killed processes left.

    ``None`` when another process is creating or removing a workspace: then
    nothing can be told apart from its work in progress, and nothing is touched.
    """
    with store.quiescent() as free:
        return _abandoned(WorkspaceManager(store), remove=not dry_run) if free else None


def _abandoned(workspaces: WorkspaceManager, *, remove: bool) -> list[str]:
    """Describe (and remove) the leftovers; the caller holds :meth:`Store.quiescent`."""
    found: list[str] = []
    pending, directories = workspaces.abandoned()
    for workspace in pending:
        found.append(f"workspace {workspace.id} ({len(workspace.resources)} resource(s)), left without an instance")
        if remove:
            workspaces.destroy(workspace)
    for name in directories:
        found.append(f"resource directory {workspaces.store.home / 'resources' / name}, which no workspace names")
        if remove:
            workspaces.discard_directory(name)
    stale = _stale_locks(workspaces.store)
    if stale:
        found.append(f"{len(stale)} lock file(s) of instances that do not exist")
        for name in stale if remove else []:
            with workspaces.store.hold(name) as free:
                if free:
                    workspaces.store.release(name)
    return found


def _stale_locks(store: Store) -> list[str]:
    """Lock files of instances whose creation was cut short (or that were removed by a killed ``rm``)."""
    locks = store.home / "locks"
    if not locks.is_dir():
        return []
    live = {lock_name(row[0]) for row in store.db.execute("SELECT id FROM instances")}
    return sorted(path.name for path in locks.iterdir() if path.name not in live)


def _instance(instance_id: str, name: str | None) -> str:
    return f"instance {name or instance_id[:12]}"


def _snapshot(snapshot_id: str) -> str:
    return f"snapshot {ids.short(snapshot_id)}"
