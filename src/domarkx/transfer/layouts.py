"""Plugin layers that are OCI image layouts travel as ordinary images, not as one opaque tar.

A plugin whose versions are container images (``docker_sandbox``) exports an
OCI image layout tar (:data:`LAYOUT_TAR`): ``index.json`` naming one image
manifest per version, and the configs and layer tars. Sent as one blob, a
registry would hold the images a second time, invisibly. Instead the tar is
*exploded* into its parts, each listed in our manifest as a layer of its own:

* ``index.json`` (:data:`INDEX_PART`), carrying the plugin layer's annotations;
* each image manifest (:data:`MANIFEST_PART`), which ``push`` also stores as a
  manifest by digest, so ``docker pull REPO@DIGEST`` gets the version as an
  ordinary image;
* the image configs and layer tars, with their own media types.

Every part is annotated with :data:`LAYOUT_KEY` (the digest of its
``index.json``), and the parts of one layout follow each other. On arrival
they are put back into a layout tar for the plugin's ``import_versions``
(:func:`implode`); a bundle holds the same parts, so both ways are one format.
Parts stay opaque blobs to the registry (our own media types for the index and
manifests), so no registry needs to understand a manifest inside a manifest,
and our manifest keeps every part alive.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import IO, Any

from domarkx import ids
from domarkx.errors import ContentError, StoreError
from domarkx.transfer.artifact import Descriptor, Layout, Source, blob_name, file_digest
from domarkx.workspace.plugin import Layer

LAYOUT_TAR = "application/vnd.oci.image.layout.v1.tar"
INDEX_PART = "application/vnd.domarkx.image-layout.index.v1+json"
MANIFEST_PART = "application/vnd.domarkx.image-layout.manifest.v1+json"
LAYOUT_KEY = "io.domarkx.image-layout"
"""Part annotation: the digest of the ``index.json`` of the layout the part came from."""
_MAX_JSON = 4 << 20


def explode(layer: Layer, annotations: dict[str, str]) -> list[tuple[Descriptor, Source]]:
    """The parts of a layout-tar layer, index first, then each image's manifest, config and layers.

    ``annotations``: what every part carries (the plugin type); the index also
    carries the layer's own. A layer the receiver has (left out of the tar) is
    not a part: an earlier artifact holds it.
    """
    try:
        with tarfile.open(layer.path, mode="r:") as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isreg()}
            index_raw = _read(tar, members["index.json"])
            common = {**annotations, LAYOUT_KEY: ids.digest_bytes(index_raw)}
            parts = [_part(layer, members["index.json"], INDEX_PART, {**layer.annotations, **common}, index_raw)]
            for digest in _manifests(index_raw):
                raw = _read(tar, members[blob_name(digest)])
                parts.append(_part(layer, members[blob_name(digest)], MANIFEST_PART, common, raw))
                for blob in _blobs(raw):
                    member = members.get(blob_name(blob["digest"]))
                    if member is not None and all(d.digest != blob["digest"] for d, _ in parts):
                        parts.append(_part(layer, member, blob["mediaType"], common))
    except (OSError, KeyError, ValueError, TypeError, tarfile.TarError) as exc:
        raise StoreError(f"{layer.path.name} is not an OCI image layout: {exc}") from exc
    return parts


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > _MAX_JSON:
        raise ValueError(f"{member.name} is too large")
    data = tar.extractfile(member)
    assert data is not None  # a regular file
    return data.read()


def _part(
    layer: Layer, member: tarfile.TarInfo, media_type: str, annotations: dict[str, str], raw: bytes | None = None
) -> tuple[Descriptor, Source]:
    """A member of the layout as a part; JSON parts are named by their bytes, blobs by their name."""
    digest = ids.digest_bytes(raw) if raw is not None else ids.PREFIX + member.name.rsplit("/", 1)[-1]
    return Descriptor(media_type, digest, member.size, annotations), Source(layer.path, member.offset_data, member.size)


def _manifests(index_raw: bytes) -> list[str]:
    return [str(entry["digest"]) for entry in json.loads(index_raw)["manifests"]]


def _blobs(manifest_raw: bytes) -> list[dict[str, Any]]:
    manifest = json.loads(manifest_raw)
    return [manifest["config"], *manifest["layers"]]


def image_manifests(layers: list[Descriptor]) -> list[Descriptor]:
    """The parts ``push`` also stores as manifests (by digest), so registries serve them as images."""
    return [d for d in layers if d.media_type == MANIFEST_PART]


def implode(layout: Layout, parts: list[Descriptor], into: Path, *, where: str) -> Layer:
    """Put the parts of one image layout (index part first) back into a layout tar for the plugin."""
    index = parts[0]
    if index.media_type != INDEX_PART or any(p.annotations.get(LAYOUT_KEY) != index.digest for p in parts):
        raise ContentError(f"{where}: the parts of image layout {index.digest} are mixed up")
    path = into / index.digest.removeprefix(ids.PREFIX)
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", io.BytesIO(b'{"imageLayoutVersion":"1.0.0"}'), 30)
        for name, part in [("index.json", index), *((blob_name(p.digest), p) for p in parts[1:])]:
            with layout.path(part.digest).open("rb") as fh:
                _add(tar, name, fh, part.size)
    digest, size = file_digest(path)
    annotations = {k: v for k, v in index.annotations.items() if k != LAYOUT_KEY}
    return Layer(LAYOUT_TAR, path, digest, size, annotations)


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    tar.addfile(info, data)
