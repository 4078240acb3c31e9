"""The records: the rows a session needs, as the config blob of the artifact.

Only what cannot be derived travels. A snapshot is its manifest (whose digest
is its id), its document (a layer) and a little metadata; its structured view
is parsed again on arrival, so a bundle cannot smuggle in a structure that
disagrees with its document. An instance is its row, its messages and its
workspace's config. Workspace versions are their rows; the resource versions
they name travel as plugin layers.

On arrival every id is recomputed (:func:`check`): a snapshot's from its
manifest and document, a workspace version's from its resource versions; and
every version an instance or snapshot links must be in the records, so that
``fork --at N`` works for every N in the receiving home.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from domarkx import ids
from domarkx.data.events import EventRow
from domarkx.data.models import FORMAT_VERSION, ConversationMessage, SessionSnapshot, WorkspaceConfig
from domarkx.data.names import validate_instance_name, validate_tag
from domarkx.data.store import Store
from domarkx.errors import ContentError, DomarkxError, ReferenceNotFound, StoreError

FORMAT = 1
"""The records format this domarkx writes and the newest it reads."""


class Root(BaseModel):
    """What the user named: each ``save``/``push`` REF, and what ``load``/``pull`` report."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["snapshot", "instance"]
    id: str


_VERSION_ID = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$"
"""What a resource version id that travels looks like (git and image ids, ``sha256:…`` digests).

Ids reach plugins, which hand them to git or an engine: one that starts with
``-`` or holds a space or a slash never comes in.
"""
_RESOURCE_NAME = r"^[A-Za-z0-9_-]{1,40}$"
_DOCTOR = "run `domarkx doctor`"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def source_name(path: str | None) -> str | None:
    """The file name a snapshot was imported from, fit to show: no directories, no control characters."""
    if not path:
        return None
    return _CONTROL.sub("?", PurePosixPath(path.replace("\\", "/")).name)[:255] or None


class SnapshotRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    manifest: dict[str, Any]
    """What the id is the digest of (docs/store.md): format, document digest, workspace state."""
    source: str | None = Field(default=None, max_length=255, pattern=r"^[^/\x00-\x1f\x7f-\x9f]+$")
    """The file name it was imported from (no directories: they would tell where the sender keeps files)."""
    created: float
    tags: list[str] = Field(default_factory=list)


ResourceName = Annotated[str, StringConstraints(pattern=_RESOURCE_NAME)]
ResourceVersion = Annotated[str, StringConstraints(pattern=_VERSION_ID)]


class VersionRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    versions: dict[ResourceName, ResourceVersion]
    """Resource name → resource version; the id is its digest."""
    types: dict[ResourceName, str]


class EventRecord(BaseModel):
    """An ``exec`` or ``cp`` made on the instance (docs/sessions.md); its standard input stays home."""

    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=1)
    messages: int = Field(ge=0)
    kind: Literal["exec", "cp"]
    resource: ResourceName
    detail: dict[str, Any]
    before: str | None
    version: str
    created: float


class InstanceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[0-9a-f]{64}$")
    name: str | None = Field(max_length=255)
    snapshot: str
    status: Literal["running", "stopped"]
    created: float
    head_version: str
    initial_version: str
    parent_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """The instance it was forked from; kept on arrival only if that one is there too."""
    parent_at: int | None = None
    hidden: bool = False
    workspace: WorkspaceConfig
    messages: list[ConversationMessage]
    events: list[EventRecord] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _instance_name(cls, name: str | None) -> str | None:
        """The rule ``run --name`` applies (:func:`domarkx.data.names.validate_instance_name`)."""
        if name is not None:
            try:
                validate_instance_name(name)
            except DomarkxError as exc:
                raise ValueError(exc.message) from exc
        return name

    def linked_versions(self) -> set[str]:
        linked = {self.head_version, self.initial_version}
        linked.update(m.workspace_version for m in self.messages if m.workspace_version)
        linked.update(e.version for e in self.events)
        return linked


class Records(BaseModel):
    """The config blob: canonical JSON of this model."""

    model_config = ConfigDict(extra="forbid")

    domarkx: int = FORMAT
    roots: list[Root]
    snapshots: list[SnapshotRecord]
    workspace_versions: list[VersionRecord]
    instances: list[InstanceRecord]

    def to_bytes(self) -> bytes:
        return ids.canonical_json(self.model_dump(mode="json"))

    def plugin_versions(self) -> dict[str, set[str]]:
        """Resource versions by plugin type: what the plugin layers must carry."""
        found: dict[str, set[str]] = {}
        for version in self.workspace_versions:
            for name, resource_version in version.versions.items():
                found.setdefault(version.types[name], set()).add(resource_version)
        return found

    def documents(self) -> dict[str, str]:
        """Snapshot id → the digest of its document."""
        return {s.id: str(s.manifest.get("document")) for s in self.snapshots}


def parse(raw: bytes, *, where: str) -> Records:
    """Records from a config blob (already checked against its digest); a newer format says to upgrade."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContentError(f"{where}: the session records are not JSON") from exc
    version = data.get("domarkx") if isinstance(data, dict) else None
    if isinstance(version, int) and version > FORMAT:
        raise ContentError(
            f"{where} was written by a newer domarkx (records format {version}; this one reads {FORMAT})",
            hint="upgrade domarkx",
        )
    try:
        return Records.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(p) for p in first["loc"])
        raise ContentError(f"{where}: the session records are invalid at {at}: {first['msg']}") from exc


# -- what leaves: collecting the rows --------------------------------------------------


@dataclass(frozen=True)
class Named:
    """A REF resolved: what it names, and the tag it was if it was one."""

    root: Root
    tag: str | None = None


def collect(store: Store, named: Sequence[Named]) -> Records:
    """The records of these snapshots and instances, read in one consistent view of the store."""
    tags = {n.root.id: sorted({m.tag for m in named if m.root == n.root and m.tag}) for n in named}
    roots = _unique([n.root for n in named])
    with store.read():
        instances = [_instance_record(store, r.id) for r in roots if r.kind == "instance"]
        snapshot_ids = {r.id for r in roots if r.kind == "snapshot"} | {i.snapshot for i in instances}
        snapshots = [_snapshot_record(store, s, tags.get(s, [])) for s in sorted(snapshot_ids)]
        versions = [_version_record(store, v) for v in sorted(_linked(snapshots, instances))]
    return Records(
        roots=roots,
        snapshots=snapshots,
        workspace_versions=versions,
        instances=sorted(instances, key=lambda i: i.id),
    )


def _unique(roots: list[Root]) -> list[Root]:
    seen: list[Root] = []
    for root in roots:
        if root not in seen:
            seen.append(root)
    return seen


def _instance_record(store: Store, instance_id: str) -> InstanceRecord:
    row = store.instances.row(instance_id)
    if row.head_version is None or row.initial_version is None:
        raise StoreError(f"instance {row.id[:12]} has no workspace version yet", hint=_DOCTOR)
    try:
        workspace = store.workspaces.config(row.workspace_id)
    except ReferenceNotFound as exc:
        raise StoreError(f"instance {row.id[:12]} has lost its workspace", hint=_DOCTOR) from exc
    return InstanceRecord(
        id=row.id,
        name=row.name,
        snapshot=row.snapshot_id,
        status=row.status,  # type: ignore[arg-type]
        created=row.created,
        head_version=row.head_version,
        initial_version=row.initial_version,
        parent_id=row.parent_id,
        parent_at=row.parent_at,
        hidden=row.hidden,
        workspace=WorkspaceConfig.model_validate_json(workspace),
        messages=[_message(row.id, i, body) for i, body in enumerate(store.instances.bodies(row.id))],
        events=[_event(event) for event in store.events.listing(row.id)],
    )


def _event(event: EventRow) -> EventRecord:
    detail = {k: v for k, v in event.detail.items() if k != "stdin"}  # a digest of a blob that stays here
    return EventRecord(
        seq=event.seq, messages=event.messages, kind=event.kind, resource=event.resource,  # type: ignore[arg-type]
        detail=detail, before=event.before, version=event.version, created=event.created,
    )  # fmt: skip


def _message(instance_id: str, index: int, body: str) -> ConversationMessage:
    try:
        return ConversationMessage.model_validate_json(body)
    except ValidationError as exc:
        damaged = f"message {index} of instance {instance_id[:12]} is damaged in the store"
        raise StoreError(damaged, hint=_DOCTOR) from exc


def _snapshot_record(store: Store, snapshot_id: str, tags: list[str]) -> SnapshotRecord:
    try:
        manifest = store.snapshots.manifest(snapshot_id)
        source = store.snapshots.payloads(snapshot_id)[2]
        created = store.snapshots.row(snapshot_id).created
    except ReferenceNotFound as exc:
        raise StoreError(f"snapshot {ids.short(snapshot_id)} is missing from the store", hint=_DOCTOR) from exc
    return SnapshotRecord(id=snapshot_id, manifest=manifest, source=source_name(source), created=created, tags=tags)


def _version_record(store: Store, version_id: str) -> VersionRecord:
    row = store.versions.get(version_id)
    if row is None:
        raise StoreError(f"workspace version {ids.short(version_id)} is missing from the store", hint=_DOCTOR)
    return VersionRecord(id=row.id, versions=row.versions, types=row.types)


def _linked(snapshots: list[SnapshotRecord], instances: list[InstanceRecord]) -> set[str]:
    """Every workspace version the snapshots' states and the instances' messages link."""
    wanted: set[str] = set()
    for snap in snapshots:
        state = snap.manifest.get("workspace_state") or {}
        if state.get("workspace_version"):
            wanted.add(state["workspace_version"])
    for record in instances:
        wanted |= record.linked_versions()
    return wanted


# -- what arrives: checking the records ------------------------------------------------


def check(records: Records, documents: dict[str, bytes], *, where: str) -> list[SessionSnapshot]:
    """Recompute every id and check every link; return the snapshots, parsed from their documents.

    ``documents``: digest → bytes of the document layers (already checked against their digests).
    """
    versions = {v.id: v for v in records.workspace_versions}
    for version in records.workspace_versions:
        _check_version(version, where)
    snapshots = [_check_snapshot(s, documents, versions, where) for s in records.snapshots]
    known = {s.id for s in snapshots}
    for instance in records.instances:
        if instance.snapshot not in known:
            raise ContentError(
                f"{where}: instance {ids.short(instance.id)} needs snapshot {instance.snapshot}, not included"
            )
        missing = instance.linked_versions() - versions.keys()
        if missing:
            raise ContentError(
                f"{where}: instance {ids.short(instance.id)} links workspace version {sorted(missing)[0]}, not included"
            )
    present = {("snapshot", s) for s in known} | {("instance", i.id) for i in records.instances}
    for root in records.roots:
        if (root.kind, root.id) not in present:
            raise ContentError(f"{where}: the {root.kind} {root.id} it names is not included")
    return snapshots


def _check_version(version: VersionRecord, where: str) -> None:
    if ids.digest_json(version.versions) != version.id:
        raise ContentError(f"{where}: workspace version {version.id} does not match its resource versions")
    if version.types.keys() != version.versions.keys():
        raise ContentError(f"{where}: workspace version {version.id} names resources without types")


def _check_snapshot(
    record: SnapshotRecord, documents: dict[str, bytes], versions: dict[str, VersionRecord], where: str
) -> SessionSnapshot:
    from domarkx.parsing.markdown import MarkdownParser

    manifest = record.manifest
    if ids.digest_json(manifest) != record.id:
        raise ContentError(f"{where}: snapshot {record.id} does not match its manifest")
    if manifest.get("format") != FORMAT_VERSION:
        raise ContentError(
            f"{where}: snapshot {ids.short(record.id)} has document format {manifest.get('format')!r}",
            hint=f"this domarkx reads format {FORMAT_VERSION}; upgrade domarkx",
        )
    data = documents.get(str(manifest.get("document")))
    if data is None:
        raise ContentError(f"{where}: the document of snapshot {ids.short(record.id)} is not included")
    for tag in record.tags:
        try:
            validate_tag(tag)
        except DomarkxError as exc:
            raise ContentError(f"{where}: snapshot {ids.short(record.id)} has an {exc.message}") from exc
    state = manifest.get("workspace_state")
    if state is not None and (not isinstance(state, dict) or state.get("workspace_version") not in versions):
        raise ContentError(f"{where}: snapshot {ids.short(record.id)} starts from a workspace version not included")
    try:
        snapshot = MarkdownParser().parse(data.decode("utf-8"), path=f"snapshot {ids.short(record.id)}")
    except UnicodeDecodeError as exc:
        raise ContentError(f"{where}: the document of snapshot {ids.short(record.id)} is not UTF-8") from exc
    except DomarkxError as exc:
        raise ContentError(f"{where}: snapshot {ids.short(record.id)}: {exc.message}", hint=exc.hint) from exc
    snapshot.id, snapshot.source, snapshot.workspace_state = record.id, record.source, state
    return snapshot
