"""``docker_sandbox`` versions as images: finding, referencing, browsing and flattening them.

A version is an image id. This module reads what is in one without running
it (a container is *created* from it, never started, and its files are read
through the archive endpoint), compares two, and removes the references a
home no longer needs. Moving versions between engines is :mod:`._docker_transfer`.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from domarkx import paths
from domarkx.errors import DomarkxError, ReferenceNotFound, UsageError
from domarkx.workspace.diff import MAX_PATCH_BYTES, text_change
from domarkx.workspace.plugin import Change, Entry, ResourceDiff, report_progress
from domarkx.workspace.plugins import _docker

if TYPE_CHECKING:
    from docker import APIClient

LABEL_WORKDIR = "org.domarkx.workdir"
"""On every version: the work dir its files are in (and that browsing reads)."""
LABEL_USER = "org.domarkx.user"
"""On every version: the user its work dir belongs to."""
KEPT_IN_MEMORY = 256 * 1024
"""Files up to this size are kept while two versions are compared, for their patch."""


def inspect(api: APIClient, ref: str) -> dict[str, Any] | None:
    """An image's description, or ``None`` if the engine has no such image."""
    import docker

    try:
        return api.inspect_image(ref)  # type: ignore[no-any-return]
    except docker.errors.ImageNotFound:
        return None


def inspect_container(api: APIClient, container: str) -> dict[str, Any] | None:
    import docker

    try:
        return api.inspect_container(container)  # type: ignore[no-any-return]
    except docker.errors.NotFound:
        return None


def base_image(api: APIClient, name: str) -> dict[str, Any]:
    """The image a new resource starts from, pulled if the engine does not have it."""
    import docker

    found = inspect(api, name)
    if found is not None:
        return found
    hint = f"pull or build it on the engine at {_docker.engine_address()} first"
    report_progress(f"pulling image {name}")
    try:
        api.pull(name)
    except docker.errors.DockerException as exc:
        raise DomarkxError(
            f"image {name!r} is not on the Docker engine and could not be pulled: {_docker._message(exc)}", hint=hint
        ) from exc
    found = inspect(api, name)
    if found is None:
        raise DomarkxError(f"image {name!r} is not on the Docker engine and could not be pulled", hint=hint)
    return found


def tag(api: APIClient, repository: str, image_id: str) -> None:
    """Reference ``image_id`` from this home: ``repository:<its hex id>``."""
    api.tag(image_id, repository, image_id.removeprefix("sha256:"))


def untag_all_but(api: APIClient, repository: str, live: set[str]) -> int:
    """Drop this home's tags of images not in ``live``; return the bytes the engine freed.

    The engine deletes an image when its last tag goes and no other image is
    built on it, then its parents that nothing else holds. An image a container
    still uses keeps its tag until the next time.
    """
    import docker

    sizes = {i["Id"]: (i["Size"], i.get("ParentId") or "") for i in api.images(all=True)}
    freed = 0
    for image in api.images(name=repository):
        if image["Id"] in live:
            continue
        for name in image.get("RepoTags") or []:
            if not name.startswith(repository + ":"):
                continue
            try:
                gone = api.remove_image(name)
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: a container uses it
                    raise
                continue
            for entry in gone:
                deleted = entry.get("Deleted")
                if deleted in sizes:
                    size, parent = sizes[deleted]
                    freed += max(0, size - sizes.get(parent, (0, ""))[0])
    return freed


def squash(api: APIClient, container: str, image: str) -> str:
    """The files of ``container`` as an image of two layers, configured like ``image`` (which is removed).

    The flat file system comes from ``docker export``/``docker import``; the
    configuration (environment, user, labels, command) is given back by
    committing a container of the imported image made with ``image``'s.
    """
    report_progress(f"flattening docker_sandbox version {image[:19]} (one layer instead of many)")
    config = api.inspect_image(image)["Config"]
    flat = api.import_image(src=api.export(container), stream_src=True)
    flat_id = _imported_id(flat)
    created = api.create_container(
        flat_id,
        entrypoint=config.get("Entrypoint"),
        command=config.get("Cmd"),
        environment=config.get("Env"),
        user=config.get("User") or "",
        working_dir=config.get("WorkingDir") or None,
        labels=config.get("Labels") or {},
    )
    try:
        squashed = str(api.commit(created["Id"])["Id"])
    finally:
        api.remove_container(created["Id"], force=True, v=True)
    with contextlib.suppress(Exception):  # an untagged leftover at worst; prune removes it
        api.remove_image(image)
    return squashed


def _imported_id(result: Any) -> str:
    text = result if isinstance(result, str) else json.dumps(result)
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            status = json.loads(line).get("status", "")
            if status.startswith("sha256:"):
                return str(status)
    raise DomarkxError(f"the Docker engine did not say which image it imported: {text[:200]}")


# -- browsing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A non-directory entry of a version's work dir, as two versions are compared."""

    entry: Entry
    digest: str
    data: bytes | None
    """The bytes, for a file small enough to keep."""


class View:
    """The files of one version, read from a created (never started) container."""

    def __init__(self, api: APIClient, container: str, workdir: bytes, version: str) -> None:
        self.api, self.container, self.workdir, self.version = api, container, workdir, version

    def _target(self, path: bytes) -> bytes:
        relative = posixpath.normpath(b"/" + path).lstrip(b"/") if path else b""
        if path.startswith(b"/") or b".." in path.split(b"/"):
            raise UsageError(f"{paths.escape(path)!r} is not a path inside the work dir")
        return posixpath.join(self.workdir, relative) if relative else self.workdir

    @contextlib.contextmanager
    def _members(self, path: bytes, missing: str) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
        import docker

        try:
            with _docker.archive(self.api, self.container, self._target(path)) as found:
                yield found
        except docker.errors.NotFound as exc:
            raise UsageError(f"{missing}: {paths.escape(path) or '.'} in version {self.version[:19]}") from exc

    def list(self, path: bytes) -> list[Entry]:
        with self._members(path, "no such directory") as (tar, top):
            if not top.isdir():
                raise UsageError(f"{paths.escape(path)} is not a directory in version {self.version[:19]}")
            prefix = os.fsencode(top.name) + b"/"
            found = []
            for member in _docker.below(tar, top):
                name = os.fsencode(member.name)[len(prefix) :].rstrip(b"/")
                if b"/" not in name:
                    found.append(_entry(member, name))
        return sorted(found, key=lambda e: e.name)

    def read(self, path: bytes) -> bytes:
        with self._members(path, "no such file") as (tar, top):
            if not top.isfile():
                kind = "a directory" if top.isdir() else "not a regular file"
                raise UsageError(f"{paths.escape(path)} is {kind} in version {self.version[:19]}")
            extracted = tar.extractfile(top)
            assert extracted is not None
            return extracted.read()

    def tree(self) -> dict[bytes, Node]:
        """Every entry but directories below the work dir, by path relative to it."""
        found: dict[bytes, Node] = {}
        with contextlib.suppress(UsageError), self._members(b"", "no work dir") as (tar, top):
            prefix = os.fsencode(top.name) + b"/"
            for member in _docker.below(tar, top):
                if not member.isdir():
                    relative = os.fsencode(member.name)[len(prefix) :]
                    found[relative] = _node(tar, member, relative)
        return found


def _entry(member: tarfile.TarInfo, name: bytes) -> Entry:
    if member.isdir():
        return Entry(name=name, kind="dir")
    if member.issym():
        return Entry(name=name, kind="link", target=os.fsencode(member.linkname))
    if member.isfile() or member.islnk():
        return Entry(name=name, kind="file", size=member.size, executable=bool(member.mode & 0o100))
    return Entry(name=name, kind="other")


def _node(tar: tarfile.TarFile, member: tarfile.TarInfo, name: bytes) -> Node:
    entry = _entry(member, name)
    if entry.kind == "link":
        data = b"symlink -> " + (entry.target or b"")
        return Node(entry, hashlib.sha256(data).hexdigest(), data)
    if not member.isfile():  # a hard link's bytes are its target's, compared there
        data = b"hard link -> " + os.fsencode(member.linkname) if member.islnk() else b""
        return Node(entry, hashlib.sha256(data).hexdigest(), data)
    digest = hashlib.sha256()
    kept = bytearray() if member.size <= KEPT_IN_MEMORY else None
    source = tar.extractfile(member)
    assert source is not None
    for chunk in iter(lambda: source.read(1 << 16), b""):
        digest.update(chunk)
        if kept is not None:
            kept += chunk
    return Node(entry, digest.hexdigest(), bytes(kept) if kept is not None else None)


@contextlib.contextmanager
def browse(api: APIClient, version: str, labels: dict[str, str]) -> Iterator[View]:
    """A :class:`View` of ``version``; the container behind it is removed on leaving."""
    image = inspect(api, version)
    if image is None:
        raise ReferenceNotFound(f"no image {version} on the Docker engine at {_docker.engine_address()}")
    workdir = (image["Config"].get("Labels") or {}).get(LABEL_WORKDIR)
    if not workdir:
        raise UsageError(f"image {version[:19]} is not a docker_sandbox version (it has no {LABEL_WORKDIR} label)")
    created = api.create_container(image["Id"], entrypoint=["true"], command=[], network_disabled=True, labels=labels)
    try:
        yield View(api, created["Id"], workdir.encode(), image["Id"])
    finally:
        api.remove_container(created["Id"], force=True, v=True)


def compare(before: dict[bytes, Node], after: dict[bytes, Node]) -> ResourceDiff:
    """The changes from one version's tree to another's, as ``domarkx diff`` shows files."""
    found: list[Change] = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old is not None and new is not None and _same(old, new):
            continue
        sizes = [node.entry.size if node is not None else 0 for node in (old, new)]
        if any(node is not None and node.data is None for node in (old, new)) or max(sizes) > MAX_PATCH_BYTES:
            status: Literal["added", "removed", "modified"] = (
                "added" if old is None else "removed" if new is None else "modified"
            )
            detail = f"binary file, {sizes[0]} → {sizes[1]} bytes"
            found.append(Change(kind="file", name=paths.escape(path), status=status, detail=detail, binary=True))
            continue
        found.append(text_change(path, old.data if old else None, new.data if new else None))
    notes = ["owners, permissions other than the executable bit, and times are not compared"]
    return ResourceDiff(changes=found, notes=notes if found else [])


def _same(old: Node, new: Node) -> bool:
    return (old.digest, old.entry.executable) == (new.digest, new.entry.executable)


def extract(tar: tarfile.TarFile, top: tarfile.TarInfo, dest: Path) -> None:
    """Unpack ``top`` (and what is below it) as ``dest``, or into ``dest`` if that is a directory.

    Names come from the container, so the standard library's ``data`` filter
    refuses anything that would land outside, links that lead out, and devices.
    Nothing is left at ``dest`` when it refuses.
    """
    target_dir = dest if dest.is_dir() else dest.parent
    if not target_dir.is_dir():
        raise UsageError(f"{paths.escape(os.fsencode(target_dir))} is not a directory")
    with tempfile.TemporaryDirectory(dir=target_dir, prefix=".domarkx-cp-") as scratch:
        try:
            tar.extractall(scratch, members=_from_parent(tar, top), filter="data")
        except tarfile.FilterError as exc:
            raise UsageError(f"refused to copy out: {exc}") from exc
        name = os.fsdecode(posixpath.basename(os.fsencode(top.name)))
        final = dest / name if dest.is_dir() else dest
        if final.is_dir() and not final.is_symlink():
            raise UsageError(f"{paths.escape(os.fsencode(final))} already exists and is a directory")
        os.replace(os.path.join(scratch, name), final)


def _from_parent(tar: tarfile.TarFile, top: tarfile.TarInfo) -> Iterator[tarfile.TarInfo]:
    """``top`` and what is below it, named from ``top``'s parent (it may have come in that parent's archive)."""
    cut = len(os.fsencode(top.name)) - len(posixpath.basename(os.fsencode(top.name)))
    for member in itertools.chain([top], _docker.below(tar, top) if top.isdir() else []):
        member.name = os.fsdecode(os.fsencode(member.name)[cut:])
        if member.islnk():
            member.linkname = os.fsdecode(os.fsencode(member.linkname)[cut:])
        yield member
