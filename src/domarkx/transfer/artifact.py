"""The one format sessions travel in: an OCI image manifest with our artifact type.

A bundle (``save``) and a registry artifact (``push``) hold the same manifest and
blobs, so one writer and one verifier serve both (docs/transfer.md)::

    manifest  application/vnd.oci.image.manifest.v1+json, artifactType SESSION
    ├── config   CONFIG: the records (rows of snapshots, instances, workspace versions), canonical JSON
    └── layers   DOCUMENT: each snapshot's document (the same blob as in the store)
                 then each plugin's layers, as its ``export_versions`` wrote them,
                 annotated with the plugin type (PLUGIN_KEY)

Everything is named by its sha256, and nothing is trusted before it has been
hashed: :func:`read_manifest` checks a manifest's shape, :class:`Layout` holds
blobs already checked against their names.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from domarkx import ids
from domarkx.errors import ContentError

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
SESSION = "application/vnd.domarkx.session.v1+json"
"""Our ``artifactType``: what registries and ``oras discover`` show."""
CONFIG = "application/vnd.domarkx.session.config.v1+json"
DOCUMENT = "application/vnd.domarkx.document.v1+markdown"
PLUGIN_KEY = "io.domarkx.plugin"
"""Layer annotation: the resource type whose ``import_versions`` takes the layer."""
TITLE_KEY = "org.opencontainers.image.title"
"""The standard annotation tools like ``oras pull`` use as a file name."""

MAX_MANIFEST = 4 << 20
"""The manifest size every registry must accept (distribution spec); we write and read no larger."""
MAX_CONFIG = 256 << 20
"""Records are read into memory: a larger config is refused rather than exhausting it."""
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Descriptor:
    """What a manifest says about one blob: its type, digest and size."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest of ours, with its exact bytes and their digest."""

    raw: bytes
    digest: str
    config: Descriptor
    layers: list[Descriptor]

    @property
    def blobs(self) -> list[Descriptor]:
        """Every blob the manifest needs, config first."""
        return [self.config, *self.layers]


def build_manifest(config: Descriptor, layers: list[Descriptor]) -> Manifest:
    """The manifest bytes for ``config`` and ``layers``; equal inputs give equal bytes (and digest)."""
    raw = ids.canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": SESSION,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
    )
    if len(raw) > MAX_MANIFEST:
        raise ContentError(
            f"the manifest would be {len(raw)} bytes, more than registries accept ({MAX_MANIFEST})",
            hint="save or push fewer sessions at once",
        )
    return Manifest(raw=raw, digest=ids.digest_bytes(raw), config=config, layers=layers)


def read_manifest(raw: bytes, digest: str, *, where: str) -> Manifest:
    """Parse and check a manifest whose bytes already hash to ``digest``; ``where`` names its origin."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContentError(f"{where}: the manifest is not JSON") from exc
    if not isinstance(data, dict) or data.get("mediaType", MANIFEST) != MANIFEST or data.get("schemaVersion") != 2:
        raise ContentError(f"{where} is not an OCI image manifest", hint="was it written by domarkx save or push?")
    if data.get("artifactType") != SESSION:
        kind = data.get("artifactType") or _config_type(data) or "unknown"
        raise ContentError(
            f"{where} is not a domarkx session (its artifact type is {kind})",
            hint="pull container images with docker; domarkx pulls what `domarkx push` wrote",
        )
    config = _descriptor(data.get("config"), where)
    layers = data.get("layers")
    if config.media_type != CONFIG or not isinstance(layers, list):
        raise ContentError(f"{where}: the manifest has no domarkx config or no layers")
    if config.size > MAX_CONFIG:
        raise ContentError(f"{where}: the config is {config.size} bytes, more than domarkx reads ({MAX_CONFIG})")
    return Manifest(raw=raw, digest=digest, config=config, layers=[_descriptor(item, where) for item in layers])


def _config_type(data: dict[str, Any]) -> str | None:
    config = data.get("config")
    kind = config.get("mediaType") if isinstance(config, dict) else None
    return kind if isinstance(kind, str) else None


def _descriptor(item: Any, where: str) -> Descriptor:
    """A descriptor from untrusted JSON: a sha256 digest, a size, a media type, string annotations."""
    if not isinstance(item, dict):
        raise ContentError(f"{where}: a descriptor of the manifest is not an object")
    media_type, digest, size = item.get("mediaType"), item.get("digest"), item.get("size")
    annotations = item.get("annotations", {})
    if not (isinstance(media_type, str) and _MEDIA_TYPE.fullmatch(media_type)):
        raise ContentError(f"{where}: a descriptor has an invalid media type {str(media_type)[:80]!r}")
    if not (isinstance(digest, str) and ids.is_digest(digest)):
        raise ContentError(f"{where}: a descriptor has an invalid or unsupported digest {str(digest)[:80]!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ContentError(f"{where}: the descriptor of {digest} has an invalid size")
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise ContentError(f"{where}: the descriptor of {digest} has annotations that are not strings")
    return Descriptor(media_type=media_type, digest=digest, size=size, annotations=dict(annotations))


# -- blobs on disk ---------------------------------------------------------------------


def blob_name(digest: str) -> str:
    """Where a blob lives in an OCI image layout: ``blobs/sha256/<hex>``."""
    return f"blobs/sha256/{digest.removeprefix(ids.PREFIX)}"


def file_digest(path: Path) -> tuple[str, int]:
    """The sha256 digest and size of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
            size += len(chunk)
    return ids.PREFIX + h.hexdigest(), size


@dataclass(frozen=True)
class Source:
    """Where a blob's bytes are: a whole file, or ``size`` bytes of it from ``offset`` (a member of a tar)."""

    path: Path
    offset: int = 0
    size: int | None = None

    def open(self) -> BinaryIO:
        """The file, positioned at the blob (read ``size`` bytes from it)."""
        fh = self.path.open("rb")
        fh.seek(self.offset)
        return fh

    def chunks(self) -> Iterator[bytes]:
        """The blob's bytes in chunks, for streaming uploads."""
        left = self.size
        with self.open() as fh:
            while left is None or left > 0:
                chunk = fh.read(_CHUNK if left is None else min(_CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk


class Verifier:
    """Hash bytes as they stream by, then check them against a descriptor."""

    def __init__(self, expected: Descriptor, where: str) -> None:
        self.expected = expected
        self.where = where
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.expected.size:
            raise ContentError(
                f"{self.where}: blob {self.expected.digest} is longer than the {self.expected.size} bytes announced",
                hint="the content was tampered with; get it again from its source",
            )
        self._hash.update(chunk)

    def check(self) -> None:
        digest = ids.PREFIX + self._hash.hexdigest()
        if self.size != self.expected.size:
            raise ContentError(
                f"{self.where}: blob {self.expected.digest} is {self.size} bytes, not {self.expected.size}",
                hint="the content is truncated; get it again from its source",
            )
        if digest != self.expected.digest:
            raise ContentError(
                f"{self.where}: blob {self.expected.digest} does not match its digest (got {digest})",
                hint="the content is corrupted or was tampered with; get it again from its source",
            )


@dataclass(frozen=True)
class Layout:
    """A directory holding a manifest's blobs, every one already checked against its digest.

    What ``load`` unpacks a bundle into and what ``pull`` downloads into: the
    installer reads only from here.
    """

    root: Path
    manifest: Manifest

    def path(self, digest: str) -> Path:
        return self.root / blob_name(digest)

    def read(self, descriptor: Descriptor) -> bytes:
        return self.path(descriptor.digest).read_bytes()
