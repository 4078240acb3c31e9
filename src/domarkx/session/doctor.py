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

from dataclasses import dataclass, field

from domarkx import ids
from domarkx.data.instances import lock_name
from domarkx.data.store import Store
from domarkx.errors import DomarkxError
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
        self.versions = store.versions.all()
        self.snapshot_rows = store.snapshots.manifests()
        self.instance_rows = store.instances.listing()
        self.made_from: dict[str, list[str]] = {}
        """snapshot id → the instances made from it (they need it to export)."""
        self.links = self._links()

    def _links(self) -> dict[str, set[str]]:
        """Who links which workspace versions: ``instance …`` and ``snapshot …`` labels."""
        links: dict[str, set[str]] = {}
        for snapshot_id, manifest, _document in self.snapshot_rows:
            state = manifest.get("workspace_state") or {}
            if state.get("workspace_version"):
                links[_snapshot(snapshot_id)] = {state["workspace_version"]}
        linked = self.store.instances.linked_versions()
        for row in self.instance_rows:
            self.made_from.setdefault(row.snapshot_id, []).append(_instance(row.id, row.name))
            links[_instance(row.id, row.name)] = linked.get(row.id, set())
        return links

    def problem(self, text: str) -> None:
        if text not in self.report.problems:
            self.report.problems.append(text)

    # -- the checks ------------------------------------------------------------------

    def integrity(self) -> None:
        problems = self.store.integrity_problems()
        if problems:
            self.problem(f"SQLite integrity check failed: {problems[0]}")

    def blobs(self) -> None:
        owners = self.store.blob_owners()
        for digest, needed_by in owners.items():
            if self.store.verify_blob(digest):
                continue
            state = "missing" if not self.store.blob_path(digest).exists() else "corrupt (its bytes no longer match)"
            self.problem(f"blob {digest} is {state}; needed by {', '.join(self._needing(digest, needed_by))}")
        self.report.checked["blobs"] = len(owners)

    def _needing(self, digest: str, owners: list[str]) -> list[str]:
        """The snapshots and instances that need a blob, directly or as a resource version."""
        snapshots = sorted(o for o in owners if o.startswith(ids.PREFIX))
        needing = [_snapshot(o) for o in snapshots] + sorted(i for o in snapshots for i in self.made_from.get(o, ()))
        holding = {v for v, row in self.versions.items() if digest in row.versions.values()}
        needing += sorted(label for label, linked in self.links.items() if linked & holding)
        return list(dict.fromkeys(needing)) or [o for o in owners if not o.startswith(ids.PREFIX)]

    def snapshots(self) -> None:
        self.report.checked["snapshots"] = len(self.snapshot_rows)
        for snapshot_id, manifest, document in self.snapshot_rows:
            label = _snapshot(snapshot_id)
            if ids.digest_json(manifest) != snapshot_id:
                self.problem(f"{label}: its id does not match its manifest")
            if manifest.get("document") != document:
                self.problem(f"{label}: its manifest names another document blob")
            self._linked_versions(label)

    def instances(self) -> None:
        self.report.checked["instances"] = len(self.instance_rows)
        snapshots = {snapshot_id for snapshot_id, _manifest, _document in self.snapshot_rows}
        for row in self.instance_rows:
            label = _instance(row.id, row.name)
            if row.snapshot_id not in snapshots:
                self.problem(f"{label}: its snapshot {row.snapshot_id} is gone")
            if not self.store.workspaces.exists(row.workspace_id):
                self.problem(f"{label}: its workspace {row.workspace_id} is gone")
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
                row = self.versions[version]
                for name, resource_version in row.versions.items():
                    wanted.setdefault(row.types[name], set()).add(resource_version)
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
                row = self.versions[version]
                for name, resource_version in sorted(row.versions.items()):
                    if (row.types[name], resource_version) in missing:
                        self.problem(
                            f"{label}: workspace version {version} cannot be loaded:"
                            f" {row.types[name]} version {resource_version} (resource {name}) is missing"
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
        for row in self.store.workspaces.of_instances():
            label = _instance(row.instance_id, row.instance_name)
            if row.pending:
                self.problem(f"{label}: its workspace is marked as being removed")
            resource = row.resource
            if not resource_path(self.store.home, resource.id).is_dir():
                self.problem(f"{label}: resource {resource.name} ({resource.type}) has lost its state directory")


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
    live = {lock_name(instance_id) for instance_id in store.instances.ids()}
    return sorted(path.name for path in locks.iterdir() if path.name not in live)


def _instance(instance_id: str, name: str | None) -> str:
    return f"instance {name or instance_id[:12]}"


def _snapshot(snapshot_id: str) -> str:
    return f"snapshot {ids.short(snapshot_id)}"
