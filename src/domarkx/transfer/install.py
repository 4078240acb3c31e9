"""What arrives in a home: checked blobs in, snapshots and instances out, all or nothing.

``load`` and ``pull`` both end here with a :class:`Layout` whose blobs already
match their digests. The order keeps the home consistent whatever happens:

1. check the records (every id recomputed, every link present) and that each new
   instance's document is trusted with the powers its workspace asks for, as
   ``run`` checks (:func:`domarkx.trust.ungranted`) — nothing written;
2. hand each plugin its layers (``import_versions``: content-addressed and
   idempotent, so a kill leaves at most unreferenced data) and ask it whether
   every version the records name is now here;
3. store the workspace version rows (immutable, invisible);
4. recreate each new instance's workspace at its head version, marked pending;
5. one transaction: snapshots, tags, instances, messages, and each workspace's claim.

A failure before 5 leaves no snapshot, instance or tag behind (a workspace made
in 4 is removed, or found by ``doctor --repair`` after a kill). What is already
here is skipped, so loading twice is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domarkx import ids, trust
from domarkx.data import transfer as rows
from domarkx.data.events import EventRow
from domarkx.data.instances import InstanceRow
from domarkx.data.models import SessionSnapshot
from domarkx.data.snapshots import NewSnapshot
from domarkx.data.store import Store
from domarkx.data.versions import VersionRow
from domarkx.errors import ContentError, DomarkxError, UsageError, one_line
from domarkx.transfer.artifact import DOCUMENT, PLUGIN_KEY, Layout
from domarkx.transfer.layouts import INDEX_PART, LAYOUT_KEY, implode
from domarkx.transfer.records import InstanceRecord, Records, Root, VersionRecord, check, parse
from domarkx.workspace.plugin import Layer, Plugin, Unsupported

if TYPE_CHECKING:
    from domarkx.workspace.manager import WorkspaceManager

_STRUCTURE_EXCLUDE = {"id", "document", "source"}
"""What a snapshot's structure blob leaves out, as ``SnapshotManager.save`` stores it."""


@dataclass
class Loaded:
    """What ``load`` or ``pull`` brought: the sessions named, what was new, and what to tell the user."""

    roots: list[Root]
    snapshots: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def install(store: Store, layout: Layout, *, where: str, again: str, tags: dict[str, str] | None = None) -> Loaded:
    """Bring the sessions of ``layout`` into the home; ``tags`` (tag → snapshot id) are set as well.

    ``again`` is the command that would load it with ``--trust``, for the hint of a refusal.
    """
    from domarkx.workspace.manager import WorkspaceManager

    manifest = layout.manifest
    records = parse(layout.read(manifest.config), where=where)
    documents = {d.digest: layout.read(d) for d in manifest.layers if d.media_type == DOCUMENT}
    snapshots = check(records, documents, where=where)
    wanted_tags = _wanted_tags(records, tags)
    loaded = Loaded(roots=records.roots)
    absent = _absent(store, records, wanted_tags)
    if absent is None:
        return loaded
    new_snapshots = [s for s in snapshots if s.id in absent[0]]
    new_instances = [i for i in records.instances if i.id in absent[1]]
    workspaces = WorkspaceManager(store)
    by_id = {s.id: s for s in snapshots}
    _check_workspaces(workspaces, new_instances, by_id, where)
    _check_trust(new_instances, by_id, where, again)
    with store.provisioning():  # until the rows link what the plugins took in, prune must not judge it unused
        _import_layers(workspaces.plugin, records, layout, where)
        versions = [_version_row(v) for v in records.workspace_versions]
        for version in versions:
            store.versions.insert(version)
        new_rows = [_new_snapshot(s, records, documents) for s in new_snapshots]
        inserted = _store_sessions(store, workspaces, new_rows, wanted_tags, new_instances, versions)
    loaded.snapshots, loaded.instances = inserted.snapshots, inserted.instances
    loaded.notes += [f"tag {t} moved here from snapshot {ids.short(s)}" for t, s in inserted.moved_tags.items()]
    loaded.notes += [
        f"instance {ids.short(i)} was loaded without its name: another instance here has it" for i in inserted.unnamed
    ]
    return loaded


def _store_sessions(
    store: Store,
    workspaces: WorkspaceManager,
    snapshots: list[rows.SnapshotBlobs],
    tags: dict[str, str],
    instances: list[InstanceRecord],
    versions: list[VersionRow],
) -> rows.Inserted:
    """Make each new instance's workspace (pending), then store everything in one transaction."""
    with store.provisioning():
        made: list[tuple[InstanceRecord, str]] = []
        try:
            for record in instances:
                made.append((record, workspaces.clone(record.workspace, record.head_version, pending=True).id))
            new = [_new_instance(record, workspace_id) for record, workspace_id in made]
            inserted = rows.insert_session(store, snapshots, tags, new, versions)
        except BaseException:
            for _record, workspace_id in made:
                workspaces.destroy(workspaces.open(workspace_id))
            raise
        for workspace_id in inserted.lost_workspaces:
            workspaces.destroy(workspaces.open(workspace_id))
    return inserted


def require_plugins(store: Store, records: Records, *, where: str) -> None:
    """Fail early, before anything is downloaded, if a plugin the sessions need is not installed here."""
    from domarkx.workspace.manager import WorkspaceManager

    workspaces = WorkspaceManager(store)
    for plugin_type in sorted(records.plugin_versions()):
        _plugin(workspaces.plugin, plugin_type, where)


def already_here(store: Store, records: Records, tags: dict[str, str] | None = None) -> bool:
    """Whether the home holds every session of ``records`` (and the tags): then there is nothing to fetch."""
    return _absent(store, records, _wanted_tags(records, tags)) is None


def _wanted_tags(records: Records, tags: dict[str, str] | None) -> dict[str, str]:
    return {tag: s.id for s in records.snapshots for tag in s.tags} | (tags or {})


def _absent(store: Store, records: Records, tags: dict[str, str]) -> tuple[set[str], set[str]] | None:
    """The snapshot and instance ids the home lacks; None if it lacks nothing and every tag is right."""
    with store.read():
        snapshots = {s.id for s in records.snapshots if not store.snapshots.exists(s.id)}
        instances = {i.id for i in records.instances} - store.instances.ids()
        tagged = all(rows.tag_target(store, tag) == target for tag, target in tags.items())
    return None if not snapshots and not instances and tagged else (snapshots, instances)


def _check_workspaces(
    workspaces: WorkspaceManager, instances: list[InstanceRecord], snapshots: dict[str, SessionSnapshot], where: str
) -> None:
    """An instance's workspace must be the one its document asks for.

    Whatever may reach past a resource's confinement is judged on the
    document (trust is keyed by it), so an instance cannot bring a workspace
    of its own: that would let a harmless document carry ``sandbox: none``.
    """
    for record in instances:
        wanted = workspaces.config_for(snapshots[record.snapshot]).model_dump(mode="json", exclude_none=True)
        if record.workspace.model_dump(mode="json", exclude_none=True) != wanted:
            raise ContentError(
                f"{where}: instance {record.id[:12]} has a workspace its document does not ask for",
                hint="the bundle or artifact was altered; do not use it",
            )


def _check_trust(
    instances: list[InstanceRecord], snapshots: dict[str, SessionSnapshot], where: str, again: str
) -> None:
    """Refuse an arriving instance whose document asks for a power you have not granted.

    Its workspace is recreated here with those options, and the next ``send``
    uses them, so a stranger's instance is judged as ``run`` judges a document,
    before anything is made. A snapshot alone runs nothing until ``run``,
    which checks it then.
    """
    for record in instances:
        snapshot = snapshots[record.snapshot]
        power = trust.ungranted(snapshot, record.workspace)
        if power is None:
            continue
        about = [ids.short(record.id)] + ([f"from {snapshot.source}"] if snapshot.source else [])
        session = f"instance {record.name + ' ' if record.name else ''}({', '.join(about)})"
        doc = snapshot.source or "DOC"
        raise UsageError(
            one_line(f"{where}: {session} asks for {power.what}; its document has not been trusted with that"),
            hint=f"if you trust it, pass --trust (`{again}`) or trust its document first (`domarkx trust {doc}`); "
            "see docs/security.md",
        )


def _import_layers(plugin_for: Callable[[str], Plugin], records: Records, layout: Layout, where: str) -> None:
    """Each plugin takes its layers, then must hold every version the records name."""
    by_type = _plugin_layers(layout, where)
    for plugin_type, versions in sorted(records.plugin_versions().items()):
        plugin = _plugin(plugin_for, plugin_type, where)
        try:
            plugin.import_versions(by_type.get(plugin_type, []))
        except Unsupported as exc:
            raise DomarkxError(
                f"{plugin_type} workspace versions cannot be brought into this home: {exc.message}",
                hint=f"upgrade the package that provides the {plugin_type} plugin",
            ) from exc
        missing = plugin.missing_versions(sorted(versions))
        if missing:
            raise ContentError(
                f"{where}: its {plugin_type} layers do not hold version {sorted(missing)[0]} ({len(missing)} missing)",
                hint="the bundle or artifact is incomplete; save or push it again",
            )


def _plugin_layers(layout: Layout, where: str) -> dict[str, list[Layer]]:
    """Each plugin's layers in manifest order, an exploded image layout put back together (:mod:`.layouts`)."""
    by_type: dict[str, list[Layer]] = {}
    listed = layout.manifest.layers
    at = 0
    while at < len(listed):
        d, at = listed[at], at + 1
        plugin_type = d.annotations.get(PLUGIN_KEY)
        if not plugin_type:
            continue
        if d.media_type == INDEX_PART:
            group = [d]
            while at < len(listed) and listed[at].annotations.get(LAYOUT_KEY) == d.digest:
                group, at = [*group, listed[at]], at + 1
            (layout.root / "layouts").mkdir(exist_ok=True)
            layer = implode(layout, group, layout.root / "layouts", where=where)
        elif LAYOUT_KEY in d.annotations:
            raise ContentError(f"{where}: a part of image layout {d.annotations[LAYOUT_KEY]} comes without its index")
        else:
            layer = Layer(d.media_type, layout.path(d.digest), d.digest, d.size, dict(d.annotations))
        by_type.setdefault(plugin_type, []).append(layer)
    return by_type


def _plugin(plugin_for: Callable[[str], Plugin], plugin_type: str, where: str) -> Plugin:
    try:
        plugin = plugin_for(plugin_type)
    except DomarkxError as exc:
        raise DomarkxError(
            f"{where} needs the {plugin_type} plugin, which is not available here: {exc.message}",
            hint=f"install the package that provides the {plugin_type} plugin (see `domarkx plugins`)",
        ) from exc
    return plugin


def _version_row(version: VersionRecord) -> VersionRow:
    return VersionRow(id=version.id, versions=version.versions, types=version.types)


def _new_snapshot(snapshot: SessionSnapshot, records: Records, documents: dict[str, bytes]) -> rows.SnapshotBlobs:
    """The rows and blobs of an arriving snapshot, as ``import`` would have stored it."""
    record = next(s for s in records.snapshots if s.id == snapshot.id)
    digest = str(record.manifest["document"])
    structure = snapshot.model_dump_json(exclude=_STRUCTURE_EXCLUDE).encode("utf-8")
    row = NewSnapshot(
        id=record.id,
        manifest=record.manifest,
        document=digest,
        structure=ids.digest_bytes(structure),
        title=snapshot.title,
        source=record.source,
        messages=len(snapshot.messages),
        size=len(documents[digest]),
        created=record.created,
    )
    return rows.SnapshotBlobs(row=row, document=documents[digest], structure=structure)


def _new_instance(record: InstanceRecord, workspace_id: str) -> rows.NewInstance:
    row = InstanceRow(
        id=record.id,
        name=record.name,
        snapshot_id=record.snapshot,
        workspace_id=workspace_id,
        status=record.status,
        created=record.created,
        head_version=record.head_version,
        initial_version=record.initial_version,
        parent_id=record.parent_id,
        parent_at=record.parent_at,
        hidden=record.hidden,
    )
    events = [
        EventRow(record.id, e.seq, e.messages, e.kind, e.resource, e.detail, e.before, e.version, e.created)
        for e in record.events
    ]
    return rows.NewInstance(row=row, bodies=[m.model_dump_json() for m in record.messages], events=events)
