"""``push`` and ``pull``: the package of :mod:`.export` to a registry, and back through :mod:`.install`.

Push sends only what the repository lacks. It first looks for a *base*, an
earlier artifact of the same session the registry already holds: the one at
the destination tag, else the one this home last pushed or pulled for that
session on the same registry (kept in ``transfer/origins.json`` under the
home: names and digests, never credentials). Its plugin layers are reused
(mounted from the other repository when needed) and plugins export only what
they lack. Then every blob is HEADed first, and uploaded only if absent; the
manifest goes last, so a push killed half-way leaves only blobs, which the
next push finds and skips.

Pull reads the manifest (checked against its digest), then the records; if
this home already has every session they hold, nothing else is downloaded.
Otherwise every layer is downloaded and checked, and :func:`.install.install`
takes it from there: nothing is stored unless all of it is good.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from domarkx.data.names import validate_tag
from domarkx.data.store import Store
from domarkx.errors import ContentError, ReferenceNotFound, UsageError
from domarkx.transfer import resolve
from domarkx.transfer.artifact import Descriptor, Layout, Manifest, read_manifest
from domarkx.transfer.credentials import Credential
from domarkx.transfer.export import Base, Package, package
from domarkx.transfer.install import Loaded, already_here, install, require_plugins
from domarkx.transfer.layouts import image_manifests
from domarkx.transfer.records import Named, Records, Root, parse
from domarkx.transfer.reference import Reference
from domarkx.transfer.reference import parse as parse_reference
from domarkx.transfer.registry import UNSET, RegistryClient
from domarkx.transfer.scratch import scratch

INSECURE_ENV = "DOMARKX_INSECURE_REGISTRIES"
"""Comma-separated registries (``host:port``) to reach as with ``--insecure``."""


@dataclass(frozen=True)
class Connection:
    """How to reach a registry: TLS checks and a private CA."""

    insecure: bool = False
    ca_file: Path | None = None

    def client(self, reference: Reference, credential: Any = UNSET) -> RegistryClient:
        """A client for the registry of ``reference``; ``credential`` (or None: anonymous) overrides the stored one."""
        listed = {h.strip() for h in os.environ.get(INSECURE_ENV, "").split(",") if h.strip()}
        return RegistryClient(
            reference.registry,
            api_host=reference.api_host,
            insecure=self.insecure or reference.registry in listed,
            ca_file=self.ca_file,
            credential=credential,
        )


@dataclass
class Pushed:
    """What a push did: where, which manifest, and what travelled."""

    reference: str
    digest: str
    size: int
    """Bytes of the artifact: the manifest and every blob it lists."""
    uploaded: int = 0
    """Bytes actually sent."""
    blobs: dict[str, int] = field(default_factory=dict)
    """How many blobs were present, mounted or uploaded."""
    base: str | None = None


def push(store: Store, ref: str, target: str, connection: Connection, *, fresh: bool = False) -> Pushed:
    """Push the session ``ref`` names to ``target`` (``REGISTRY/REPO[:TAG]``).

    ``fresh``: use no earlier push, so the artifact holds only what the session links.
    """
    reference = parse_reference(target)
    if reference.digest:
        raise UsageError(f"cannot push to a digest ({target})", hint="push to a tag: REGISTRY/REPO[:TAG]")
    named = [Named(n.root) for n in resolve(store, [ref])]  # local tag names stay here; the pull names it
    with connection.client(reference) as registry:
        base, mount_from = (None, None) if fresh else _base(store, registry, reference, named[0].root)
        with package(store, named, base=base) as pkg:
            pushed = Pushed(str(reference), pkg.manifest.digest, pkg.size, base=base.digest if base else None)
            for blob in pkg.manifest.blobs:
                source = mount_from if base and blob.digest in base.blobs else None
                how = registry.push_blob(reference.repository, blob, pkg.files.get(blob.digest), mount_from=source)
                pushed.blobs[how] = pushed.blobs.get(how, 0) + 1
            _push_images(registry, reference.repository, pkg)
            if pushed.base != pkg.manifest.digest or mount_from:  # else the tag names this very manifest already
                raw = pkg.manifest.raw
                registry.push_manifest(reference.repository, reference.target, raw, pkg.manifest.digest)
                pushed.uploaded = len(raw)
            pushed.uploaded += registry.sent
    _remember(store, reference, named[0].root, pushed.digest)
    return pushed


def _push_images(registry: RegistryClient, repository: str, pkg: Package) -> None:
    """Store the image manifests of exploded image layouts by digest: the versions become ordinary images."""
    for part in image_manifests(pkg.manifest.layers):
        source = pkg.files.get(part.digest)
        if source is not None:  # else an earlier push stored it
            with source.open() as fh:
                raw = fh.read(part.size)
            registry.push_manifest(repository, part.digest, raw, part.digest)


def _base(store: Store, registry: RegistryClient, reference: Reference, root: Root) -> tuple[Base | None, str | None]:
    """An earlier artifact of this session the registry holds, and the repository to mount its blobs from."""
    here = _fetch(registry, reference.repository, reference.target)
    if here is not None:
        return here, None
    origin = _origin(store, reference.registry, root)
    if origin is None or origin[0] == reference.repository:
        return None, None
    return _fetch(registry, origin[0], origin[1]), origin[0]


def _fetch(registry: RegistryClient, repository: str, target: str) -> Base | None:
    """The artifact at ``target`` as a base, or None if there is none, or it is not a session of ours."""
    got = registry.get_manifest(repository, target)
    if got is None:
        return None
    try:
        manifest = read_manifest(*got, where=f"{registry.registry}/{repository}:{target}")
        records = _records(registry, repository, manifest)
    except ContentError:
        return None  # someone else's artifact at that tag: push everything
    return Base.of(manifest, records)


def _records(registry: RegistryClient, repository: str, manifest: Manifest) -> Records:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config"
        registry.get_blob(repository, manifest.config, path)
        return parse(path.read_bytes(), where=f"{registry.registry}/{repository}@{manifest.digest}")


def pull(store: Store, source: str, connection: Connection, *, again: str) -> Loaded:
    """Pull ``REGISTRY/REPO[:TAG|@DIGEST]`` into the home; a pulled snapshot is tagged with the reference.

    ``again``: the command that pulls it with ``--trust``, for the hint when a power is refused.
    """
    reference = parse_reference(source)
    with connection.client(reference) as registry:
        got = registry.get_manifest(reference.repository, reference.target)
        if got is None:
            raise ReferenceNotFound(f"{reference} is not in the registry", hint="check the repository and tag")
        manifest = read_manifest(*got, where=str(reference))
        where = f"{reference.registry}/{reference.repository}@{manifest.digest}"
        with scratch(store) as tmp:
            layout = Layout(root=tmp, manifest=manifest)
            _download(registry, reference.repository, layout, [manifest.config])
            records = parse(layout.read(manifest.config), where=where)
            tags = _tags(reference, records)
            if already_here(store, records, tags):
                return Loaded(roots=records.roots)
            require_plugins(store, records, where=where)
            _download(registry, reference.repository, layout, manifest.layers)
            loaded = install(store, layout, where=where, again=again, tags=tags)
    for root in records.roots:
        _remember(store, reference, root, manifest.digest)
    return loaded


def _download(registry: RegistryClient, repository: str, layout: Layout, blobs: list[Descriptor]) -> None:
    for blob in blobs:
        path = layout.path(blob.digest)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        registry.get_blob(repository, blob, path)


def _tags(reference: Reference, records: Records) -> dict[str, str]:
    """A snapshot pulled by tag gets the reference as its local tag, as ``docker pull`` names an image."""
    snapshots = [root.id for root in records.roots if root.kind == "snapshot"]
    if reference.digest or len(snapshots) != 1:
        return {}
    try:
        validate_tag(str(reference))  # an IPv6 registry ([::1]:5000) makes no tag
    except UsageError:
        return {}
    return {str(reference): snapshots[0]}


def login(registry: str, username: str, password: str, connection: Connection) -> str:
    """Check the credential against the registry, then keep it; return where it went."""
    from domarkx.transfer import credentials

    credential = Credential(username, password)
    where = _registry(registry)
    with connection.client(where, credential) as client:
        client.check()
    return credentials.store(where.registry, credential)


def logout(registry: str) -> bool:
    from domarkx.transfer import credentials

    return credentials.erase(_registry(registry).registry)


def _registry(text: str) -> Reference:
    """A registry named alone (``localhost:5000``) or by a reference (``localhost:5000/team/demo``)."""
    text = text.strip().rstrip("/")
    return parse_reference(text if "/" in text else f"{text}/login")


# -- where each session was last pushed or pulled, per registry (a hint for bases) ---------------


def _origins_path(store: Store) -> Path:
    return store.home / "transfer" / "origins.json"


def _origin(store: Store, registry: str, root: Root) -> tuple[str, str] | None:
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        entry = json.loads(_origins_path(store).read_text())[registry][f"{root.kind}:{root.id}"]
        return str(entry["repository"]), str(entry["digest"])
    return None


def _remember(store: Store, reference: Reference, root: Root, digest: str) -> None:
    path = _origins_path(store)
    with contextlib.suppress(OSError, ValueError):
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            data = {}
        entry = {"repository": reference.repository, "digest": digest}
        data.setdefault(reference.registry, {})[f"{root.kind}:{root.id}"] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".origins.")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, sort_keys=True)
        os.replace(tmp, path)
