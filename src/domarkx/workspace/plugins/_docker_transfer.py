"""Moving ``docker_sandbox`` versions between engines: one OCI image layout per export.

:func:`save` asks the engine for ``docker save`` of the versions and rewrites it
as an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/…``):
one manifest per version, listed in ``index.json`` with the version (the
image id) as an annotation; each image config is stored byte for byte, so its
digest is still the image id; layers are the uncompressed layer tars, whose
digests are the layers' diff ids. Blobs shared by several versions are stored
once, and layers the receiver already has (those of the versions in ``have``)
are left out. The file is the same bytes for the same versions.

A registry takes each manifest as an ordinary image. :func:`load` checks every
blob against its digest, turns the layout back into what ``docker load``
reads on any engine (Engines before 25 do not read OCI layouts), and loads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import posixpath
import tarfile
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from domarkx.errors import StoreError
from domarkx.workspace.plugin import Layer
from domarkx.workspace.plugins import _docker

if TYPE_CHECKING:
    from docker import APIClient

MEDIA_TYPE = "application/vnd.oci.image.layout.v1.tar"
VERSIONS_ANNOTATION = "org.domarkx.docker.versions"
"""On the :class:`Layer` and in ``index.json``: the versions (image ids) it holds, space-separated."""
VERSION_ANNOTATION = "org.domarkx.docker.version"
"""On each manifest of ``index.json``: the version (image id) it describes."""
OMITTED_ANNOTATION = "org.domarkx.docker.omitted"
"""In ``index.json``: layer digests left out because the receiver has them (space-separated)."""
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
INDEX = "application/vnd.oci.image.index.v1+json"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The engine's ids of a stack of layers: each names the layer with everything below it."""
    chain, found = "", []
    for diff_id in diff_ids:
        chain = diff_id if not chain else _sha256(f"{chain} {diff_id}".encode())
        found.append(chain)
    return found


# -- export ---------------------------------------------------------------------------


def save(api: APIClient, versions: list[str], into: Path, *, have: Collection[str] = ()) -> Layer:
    """An OCI image layout of ``versions`` at ``into``; layers of the ``have`` versions are left out."""
    for version in versions:
        if _docker_inspect(api, version) is None:
            raise StoreError(f"no image {version} on the Docker engine at {_docker.engine_address()}")
    known = set()
    for version in have:
        image = _docker_inspect(api, version)
        if image is not None:
            known.update(chain_ids(image["RootFS"]["Layers"]))
    into.mkdir(parents=True, exist_ok=True)
    path = into / "docker-versions.oci.tar"
    with tempfile.TemporaryFile() as raw:
        response = api._get(api._url("/images/get"), params={"names": versions}, stream=True)
        try:
            api._raise_for_status(response)
            for chunk in response.iter_content(1 << 16, decode_unicode=False):
                raw.write(chunk)
        finally:
            response.close()
        raw.seek(0)
        with tarfile.open(fileobj=raw, mode="r:") as archive, path.open("wb") as out:
            _write_layout(archive, known, out)
    digest, size = _file_digest(path)
    return Layer(MEDIA_TYPE, path, digest, size, annotations={VERSIONS_ANNOTATION: " ".join(versions)})


def _docker_inspect(api: APIClient, ref: str) -> dict[str, Any] | None:
    import docker

    try:
        return api.inspect_image(ref)  # type: ignore[no-any-return]
    except docker.errors.ImageNotFound:
        return None


def _write_layout(archive: tarfile.TarFile, known: set[str], out: IO[bytes]) -> None:
    """Rewrite a ``docker save`` archive (any engine's: they all carry ``manifest.json``) as an OCI layout."""
    blobs: dict[str, bytes | str] = {}
    """Digest -> the bytes, or the member of ``archive`` holding them (layers are not read into memory)."""
    entries: list[dict[str, Any]] = []
    omitted: set[str] = set()
    for image in json.load(_member(archive, "manifest.json")):
        config = _member(archive, image["Config"]).read()
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        layers = []
        for member, diff_id, chain in zip(image["Layers"], diff_ids, chain_ids(diff_ids), strict=True):
            layers.append({"mediaType": LAYER_TAR, "digest": diff_id, "size": _file(archive, member).size})
            if chain in known:
                omitted.add(diff_id)
            else:
                blobs[diff_id] = member
        manifest = _canonical(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {"mediaType": CONFIG, "digest": _sha256(config), "size": len(config)},
                "layers": layers,
            }
        )
        blobs[_sha256(config)], blobs[_sha256(manifest)] = config, manifest
        entries.append(
            {
                "mediaType": MANIFEST,
                "digest": _sha256(manifest),
                "size": len(manifest),
                "annotations": {VERSION_ANNOTATION: _sha256(config)},
            }
        )
    entries.sort(key=lambda e: e["annotations"][VERSION_ANNOTATION])
    versions = " ".join(e["annotations"][VERSION_ANNOTATION] for e in entries)
    annotations = {VERSIONS_ANNOTATION: versions} | ({OMITTED_ANNOTATION: " ".join(sorted(omitted))} if omitted else {})
    index = _canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries, "annotations": annotations})
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as layout:
        _add(layout, "oci-layout", io.BytesIO(_canonical({"imageLayoutVersion": "1.0.0"})))
        _add(layout, "index.json", io.BytesIO(index))
        for digest in sorted(blobs):
            source = blobs[digest]
            name = f"blobs/sha256/{digest.removeprefix('sha256:')}"
            if isinstance(source, bytes):
                _add(layout, name, io.BytesIO(source))
            else:
                _add_checked(layout, name, _member(archive, source), digest, _file(archive, source).size)


def _file(archive: tarfile.TarFile, name: str) -> tarfile.TarInfo:
    """The entry of file ``name``, through the symbolic links ``docker save`` makes for a layer met twice."""
    member = archive.getmember(name)
    for _ in range(8):
        if not member.issym():
            return member
        member = archive.getmember(posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname)))
    raise StoreError(f"the archive's links from {name!r} go round in circles")


def _member(archive: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        found = archive.extractfile(name)
    except KeyError:
        found = None
    if found is None:
        raise StoreError(f"the archive has no file {name!r}")
    return found


def _add(layout: tarfile.TarFile, name: str, data: IO[bytes] | io.RawIOBase, size: int | None = None) -> None:
    """One file of the layout, with nothing that varies between runs (owner, time, mode)."""
    info = tarfile.TarInfo(name)
    info.size = size if size is not None else len(data.getbuffer()) if isinstance(data, io.BytesIO) else 0
    info.mode, info.mtime = 0o644, 0
    layout.addfile(info, cast(IO[bytes], data))


class _Hashing(io.RawIOBase):
    """A reader that hashes what passes through it."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source, self.hash = source, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.source.read(len(buffer))
        self.hash.update(data)
        buffer[: len(data)] = data
        return len(data)


def _add_checked(out: tarfile.TarFile, name: str, source: IO[bytes], digest: str, size: int) -> None:
    """Copy a (large) blob into ``out`` as ``name``; it must hash to ``digest``."""
    reader = _Hashing(source)
    _add(out, name, reader, size)
    if "sha256:" + reader.hash.hexdigest() != digest:
        raise StoreError(f"a layer does not hash to its digest {digest}")


def _file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest(), path.stat().st_size


# -- import ---------------------------------------------------------------------------


def load(api: APIClient, layer: Layer) -> list[str]:
    """Load a :func:`save` layer into the engine; return the versions it holds.

    Every claimed version must be in the layout, every blob must hash to its
    name, and the engine must end up with every version; otherwise nothing it
    did not have before is kept.
    """
    if layer.media_type != MEDIA_TYPE:
        raise StoreError(f"a docker_sandbox layer cannot be {layer.media_type!r}")
    claimed = layer.annotations.get(VERSIONS_ANNOTATION, "").split()
    present = {image["Id"] for image in api.images(all=True)}
    with tempfile.TemporaryFile() as archive:
        _write_docker_archive(layer.path, claimed, archive)
        if all(version in present for version in claimed):
            return claimed
        archive.seek(0)
        try:
            for message in api.load_image(archive):
                if "error" in message:
                    raise StoreError(f"the Docker engine could not load {layer.path.name}: {message['error']}")
            for version in claimed:
                if _docker_inspect(api, version) is None:
                    raise StoreError(f"{layer.path.name} did not give the engine image {version}")
        except BaseException:
            for version in claimed:
                if version not in present:
                    with contextlib.suppress(Exception):
                        api.remove_image(version, force=True)
            raise
    return claimed


def _write_docker_archive(path: Path, claimed: list[str], out: IO[bytes]) -> None:
    """The layout at ``path`` as ``docker load`` reads it (``manifest.json``, a config and layer per image)."""
    try:
        with tarfile.open(path, mode="r:") as layout:
            images = list(_images(layout))
            lacking = sorted(set(claimed) - {config for config, _ in images})
            if not claimed or lacking:
                raise StoreError(
                    f"{path.name} does not hold the docker_sandbox versions it claims: {' '.join(lacking)}"
                )
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
                written: set[str] = set()
                manifest = []
                for config, layers in images:
                    hex_id = config.removeprefix("sha256:")
                    _add_blob(layout, archive, config, f"{hex_id}.json")
                    for digest in layers:
                        if digest not in written and _has_blob(layout, digest):
                            _add_blob(layout, archive, digest, f"{digest.removeprefix('sha256:')}/layer.tar")
                            written.add(digest)
                    names = [f"{d.removeprefix('sha256:')}/layer.tar" for d in layers]
                    manifest.append({"Config": f"{hex_id}.json", "RepoTags": None, "Layers": names})
                _add(archive, "manifest.json", io.BytesIO(_canonical(manifest)))
    except (OSError, KeyError, TypeError, ValueError, tarfile.TarError) as exc:
        raise StoreError(f"{path.name} is not an OCI image layout of docker_sandbox versions: {exc}") from exc


def _images(layout: tarfile.TarFile) -> Iterator[tuple[str, list[str]]]:
    """(config digest, layer digests) of each manifest the layout's index lists, blobs checked."""
    index = json.loads(_blob(layout, None, "index.json"))
    for entry in index["manifests"]:
        manifest = json.loads(_blob(layout, entry["digest"]))
        config = manifest["config"]["digest"]
        _blob(layout, config)
        yield config, [item["digest"] for item in manifest["layers"]]


def _blob_name(digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    if algorithm != "sha256" or len(hex_part) != 64 or not all(c in "0123456789abcdef" for c in hex_part):
        raise StoreError(f"not a sha256 digest: {digest[:80]!r}")
    return f"blobs/sha256/{hex_part}"


def _has_blob(layout: tarfile.TarFile, digest: str) -> bool:
    try:
        layout.getmember(_blob_name(digest))
    except KeyError:
        return False
    return True


def _blob(layout: tarfile.TarFile, digest: str | None, name: str | None = None) -> bytes:
    """A small blob (a manifest, a config, the index), checked against its digest."""
    data = _member(layout, name or _blob_name(digest or "")).read()
    if digest is not None and _sha256(data) != digest:
        raise StoreError(f"blob {digest} does not hash to its name")
    return data


def _add_blob(layout: tarfile.TarFile, archive: tarfile.TarFile, digest: str, name: str) -> None:
    member = layout.getmember(_blob_name(digest))
    _add_checked(archive, name, _member(layout, member.name), digest, member.size)
