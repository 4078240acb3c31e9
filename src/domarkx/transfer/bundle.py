"""Bundles: a package as an OCI image layout in a tar (``save``), and back (``load``).

The tar holds ``oci-layout``, ``index.json`` (one manifest, ours) and
``blobs/sha256/<hex>`` for the manifest and every blob it lists: the same
bytes ``push`` uploads, so ``oras``/``skopeo`` can copy a bundle to a registry
(``oci-archive:``) and the format needs no second reader. Entries are written
with fixed owners, modes and times, so the same package always gives the same
file.

Reading trusts nothing: it streams the tar (gzip or not) once, keeps only
regular files at the names above, hashes every blob against its name as it is
written to scratch space, and then checks that the index names one session
manifest whose blobs are all there with the sizes it states.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from domarkx import ids
from domarkx.errors import ContentError
from domarkx.transfer.artifact import (
    INDEX,
    MANIFEST,
    MAX_MANIFEST,
    SESSION,
    Descriptor,
    Layout,
    Verifier,
    blob_name,
    read_manifest,
)
from domarkx.transfer.export import Package

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
_LAYOUT = {"imageLayoutVersion": "1.0.0"}
_BLOB = re.compile(r"blobs/sha256/([0-9a-f]{64})")
_SMALL = 1 << 20
"""The most ``oci-layout`` or ``index.json`` may hold."""


def write_bundle(package: Package, out: IO[bytes]) -> None:
    """Write ``package`` to ``out`` as an OCI image layout tar."""
    manifest = package.manifest
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [
            {"mediaType": MANIFEST, "artifactType": SESSION, "digest": manifest.digest, "size": len(manifest.raw)}
        ],
    }
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, LAYOUT_FILE, ids.canonical_json(_LAYOUT))
        _add(tar, INDEX_FILE, ids.canonical_json(index))
        _add(tar, blob_name(manifest.digest), manifest.raw)
        for blob in manifest.blobs:
            with package.files[blob.digest].open() as fh:
                tar.addfile(_info(blob_name(blob.digest), blob.size), fh)


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def read_bundle(source: IO[bytes], into: Path, *, where: str) -> Layout:
    """Unpack and check a bundle into the scratch directory ``into``."""
    small: dict[str, bytes] = {}
    found: dict[str, int] = {}
    with _reading(where), tarfile.open(fileobj=source, mode="r|*") as tar:
        for member in tar:
            _take(tar, member, into, small, found, where)
    if LAYOUT_FILE not in small or INDEX_FILE not in small:
        raise ContentError(f"{where} is not a domarkx bundle (no oci-layout or index.json)", hint=_HINT)
    digest = _session_manifest(small[INDEX_FILE], where)
    if digest not in found:
        raise ContentError(f"{where} is incomplete: its manifest {digest} is missing", hint=_HINT)
    raw = (into / blob_name(digest)).read_bytes()
    if len(raw) > MAX_MANIFEST:
        raise ContentError(f"{where}: its manifest is larger than domarkx reads")
    manifest = read_manifest(raw, digest, where=where)
    for blob in manifest.blobs:
        _check_present(blob, found, where)
    return Layout(root=into, manifest=manifest)


_HINT = "it is damaged or truncated, or was not written by `domarkx save`; save or copy it again"


@contextlib.contextmanager
def _reading(where: str) -> Iterator[None]:
    """The tar and decompression errors of a damaged file, as one ContentError."""
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error, ValueError) as exc:
        raise ContentError(f"{where} is not a readable bundle (tar: {exc})", hint=_HINT) from exc


def _take(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    into: Path,
    small: dict[str, bytes],
    found: dict[str, int],
    where: str,
) -> None:
    """Keep one member if it is a layout file or a blob; anything else is skipped, never written."""
    name = member.name.removeprefix("./")
    blob = _BLOB.fullmatch(name)
    if name not in (LAYOUT_FILE, INDEX_FILE) and blob is None:
        return
    if not member.isreg():
        raise ContentError(f"{where}: {name} is not a regular file in the tar", hint=_HINT)
    stream = tar.extractfile(member)
    assert stream is not None  # a regular file
    if blob is None:
        if member.size > _SMALL:
            raise ContentError(f"{where}: {name} is too large", hint=_HINT)
        small[name] = stream.read()
        return
    digest = ids.PREFIX + blob.group(1)
    target = into / name
    target.parent.mkdir(parents=True, exist_ok=True)
    verifier = Verifier(Descriptor("application/octet-stream", digest, member.size), where)
    with target.open("wb") as out:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            verifier.update(chunk)
            out.write(chunk)
    verifier.check()
    found[digest] = member.size


def _session_manifest(raw: bytes, where: str) -> str:
    """The digest of the one session manifest ``index.json`` lists."""
    try:
        index: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContentError(f"{where}: index.json is not JSON", hint=_HINT) from exc
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list):
        raise ContentError(f"{where}: index.json lists no manifests", hint=_HINT)
    ours = [e for e in entries if isinstance(e, dict) and e.get("artifactType") == SESSION]
    if len(ours) != 1 or not isinstance(ours[0].get("digest"), str) or not ids.is_digest(ours[0]["digest"]):
        raise ContentError(
            f"{where} holds {len(ours)} domarkx session manifests, not one",
            hint="load bundles written by `domarkx save`",
        )
    return str(ours[0]["digest"])


def _check_present(blob: Descriptor, found: dict[str, int], where: str) -> None:
    size = found.get(blob.digest)
    if size is None:
        raise ContentError(f"{where} is incomplete: blob {blob.digest} is missing", hint=_HINT)
    if size != blob.size:
        raise ContentError(f"{where}: blob {blob.digest} is {size} bytes, its manifest says {blob.size}", hint=_HINT)
