"""What leaves a home: the records, the documents and the plugins' layers, as one manifest.

``save`` writes the package into a tar; ``push`` uploads it. A push to a tag
that already holds an earlier artifact of the same sessions passes that
artifact as a :class:`Base`: its plugin layers are listed again (the registry
has them) and each plugin exports only what they lack (``have=``), so a second
push after one change uploads one small pack, the new records and the manifest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from domarkx import ids
from domarkx.data.store import Store
from domarkx.errors import ContentError, DomarkxError, StoreError
from domarkx.transfer.artifact import (
    CONFIG,
    DOCUMENT,
    PLUGIN_KEY,
    TITLE_KEY,
    Descriptor,
    Manifest,
    Source,
    build_manifest,
)
from domarkx.transfer.layouts import LAYOUT_TAR, explode
from domarkx.transfer.records import Named, Records, collect
from domarkx.transfer.scratch import scratch
from domarkx.workspace.plugin import Layer, Plugin, Unsupported


@dataclass(frozen=True)
class Base:
    """An artifact the destination already holds: its plugin layers and the versions they carry."""

    layers: dict[str, list[Descriptor]]
    versions: dict[str, set[str]]
    roots: frozenset[tuple[str, str]] = frozenset()
    """The sessions it holds, as (kind, id)."""
    digest: str | None = None
    """The base's manifest, for the report."""
    blobs: frozenset[str] = frozenset()
    """Every blob the base lists: where the registry can mount from."""

    @classmethod
    def of(cls, manifest: Manifest, records: Records) -> Base:
        layers: dict[str, list[Descriptor]] = {}
        for layer in manifest.layers:
            plugin_type = layer.annotations.get(PLUGIN_KEY)
            if plugin_type:
                layers.setdefault(plugin_type, []).append(layer)
        return cls(
            layers=layers,
            versions=records.plugin_versions(),
            roots=frozenset((r.kind, r.id) for r in records.roots),
            digest=manifest.digest,
            blobs=frozenset(b.digest for b in manifest.blobs),
        )

    def reusable(
        self, plugin_type: str, versions: set[str], roots: set[tuple[str, str]]
    ) -> tuple[list[Descriptor], set[str]]:
        """The base's layers of a plugin and the versions they carry, if they are worth listing again.

        They are for an earlier push of the same session: its layers may carry
        versions no longer linked (a head replaced by ``exec``), but those share
        most of their content with the new ones, so stacking one small layer on
        them beats sending everything again. For another session, only if we
        want every version they carry: otherwise every puller would download a
        stranger's versions.
        """
        have = self.versions.get(plugin_type, set())
        if not have or not (roots & self.roots or have <= versions):
            return [], set()
        return self.layers.get(plugin_type, []), have


@dataclass(frozen=True)
class Package:
    """A manifest and where to read each blob; a blob reused from a base has no local file."""

    records: Records
    manifest: Manifest
    files: dict[str, Source] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Bytes of the manifest and every blob it lists."""
        return len(self.manifest.raw) + sum(b.size for b in self.manifest.blobs)


@contextlib.contextmanager
def package(store: Store, named: Sequence[Named], *, base: Base | None = None) -> Iterator[Package]:
    """Collect the sessions ``named`` and their workspace versions; the files live until the block ends."""
    from domarkx.workspace.manager import WorkspaceManager

    records = collect(store, named)
    roots: set[tuple[str, str]] = {(r.kind, r.id) for r in records.roots}
    workspaces = WorkspaceManager(store)
    with scratch(store) as tmp:
        files: dict[str, Source] = {}
        layers: list[Descriptor] = []
        for snapshot in records.snapshots:
            digest = str(snapshot.manifest["document"])
            files[digest] = Source(store.blob_path(digest))
            title = f"{ids.short(snapshot.id)}.md"
            layers.append(Descriptor(DOCUMENT, digest, _size(files[digest].path), {TITLE_KEY: title}))
        for plugin_type, versions in sorted(records.plugin_versions().items()):
            reused, have = base.reusable(plugin_type, versions, roots) if base else ([], set())
            exported = _export(workspaces.plugin(plugin_type), versions, tmp / "layers" / plugin_type, have)
            layers += reused
            for descriptor, source in _descriptors(exported, plugin_type):
                files[descriptor.digest] = source
                layers.append(descriptor)
        data = records.to_bytes()
        config = Descriptor(CONFIG, ids.digest_bytes(data), len(data))
        files[config.digest] = Source(tmp / "config.json")
        files[config.digest].path.write_bytes(data)
        yield Package(records=records, manifest=build_manifest(config, _unique(layers)), files=files)


def _descriptors(layers: list[Layer], plugin_type: str) -> Iterator[tuple[Descriptor, Source]]:
    """Each layer as it is listed: as itself, or an image layout as its parts (:mod:`.layouts`)."""
    for layer in layers:
        if layer.media_type == LAYOUT_TAR:
            yield from explode(layer, {PLUGIN_KEY: plugin_type})
        else:
            annotations = _annotate(layer, plugin_type)
            yield Descriptor(layer.media_type, layer.digest, layer.size, annotations), Source(layer.path)


def _export(plugin: Plugin, versions: set[str], into: Path, have: set[str]) -> list[Layer]:
    """One plugin's layers for ``versions``, skipping what ``have`` holds."""
    if versions <= have:
        return []
    into.mkdir(parents=True)
    try:
        layers = plugin.export_versions(sorted(versions), into, have=sorted(have))
    except Unsupported as exc:
        raise DomarkxError(
            f"{plugin.type} workspace versions cannot leave this home: the plugin does not export them",
            hint=f"an instance or committed snapshot with a {plugin.type} resource cannot be saved or pushed"
            " until it does; a snapshot imported from a document can",
        ) from exc
    for layer in layers:
        if _size(layer.path) != layer.size:
            raise ContentError(f"{plugin.type} wrote layer {layer.path.name} of another size than it reports")
    return layers


def _annotate(layer: Layer, plugin_type: str) -> dict[str, str]:
    annotations = {key: value for key, value in layer.annotations.items() if key != PLUGIN_KEY}
    annotations[PLUGIN_KEY] = plugin_type
    return annotations


def _unique(layers: list[Descriptor]) -> list[Descriptor]:
    """Each blob once (two snapshots may share a document), in first-seen order."""
    seen: set[str] = set()
    kept = []
    for layer in layers:
        if layer.digest not in seen:
            seen.add(layer.digest)
            kept.append(layer)
    return kept


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError as exc:
        raise StoreError(f"{path} is missing from the store", hint="run `domarkx doctor`") from exc
