"""A small real plugin for the transfer tests: a work directory whose versions are store blobs.

It implements the whole protocol the transfer needs (``export_versions``,
``import_versions``, an honest ``missing_versions``), so save/load and
push/pull are tested against the same loader path third-party plugins use
(a test-only distribution registers it; see conftest.py), independently of
the built-in plugins. A version is the canonical JSON of ``{path: base64}``,
its id the blob's digest; a layer is one version's blob, so a second push
after one change carries one small layer.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from domarkx import ids
from domarkx.errors import StoreError
from domarkx.tools.schema import object_schema
from domarkx.workspace.plugin import CodeRunner, Layer, Plugin, Resource, ToolError, ToolSpec

TYPE = "testfiles"
MEDIA_TYPE = "application/vnd.domarkx.test.files.v1+json"
OWNER = f"plugin:{TYPE}"
PAUSE = "DOMARKX_TESTFILES_PAUSE"
TOOLS = [
    ToolSpec(
        name="run_command",
        description="Run a bash command in the work directory.",
        parameters=object_schema({"command": {"type": "string"}}, ["command"]),
    )
]


class FilesPlugin(Plugin):
    """Files in a directory, versioned as JSON blobs (test plugin)."""

    code = CodeRunner(tool="run_command", argument="command", languages=frozenset({"bash", "sh"}))

    @property
    def type(self) -> str:
        return TYPE

    def work(self, resource_id: str) -> Path:
        return self.context.resource_dir(resource_id) / "work"

    def create_resource(self, config: dict[str, Any]) -> Resource:
        resource_id = f"{TYPE}-{uuid.uuid4().hex}"
        self.work(resource_id).mkdir()
        self.commit_version(resource_id)
        return Resource(id=resource_id, name=TYPE, type=TYPE, config=config)

    def destroy_resource(self, resource_id: str) -> None:
        shutil.rmtree(self.context.resource_dir(resource_id), ignore_errors=True)

    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        return list(TOOLS)

    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        if tool_name != "run_command":
            raise ToolError(f"no tool {tool_name}")
        done = subprocess.run(
            ["bash", "-c", kwargs["command"]], cwd=self.work(resource_id), capture_output=True, text=True, timeout=30
        )
        return {"exit_code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

    # -- versions -----------------------------------------------------------------

    def _state(self, resource_id: str) -> Path:
        return self.context.resource_dir(resource_id) / "version"

    def get_version(self, resource_id: str) -> str:
        return self._state(resource_id).read_text()

    def commit_version(self, resource_id: str) -> str:
        work = self.work(resource_id)
        files = {}
        for top, _dirs, names in os.walk(work):
            for name in names:
                path = Path(top, name)
                files[os.fsencode(path.relative_to(work)).decode("utf-8", "surrogateescape")] = base64.b64encode(
                    path.read_bytes()
                ).decode()
        with self.context.store.write():
            version = self.context.store.put_blob(ids.canonical_json(files))
            self.context.store.add_refs(OWNER, [version])
        self._state(resource_id).write_text(version)
        return version

    def load_version(self, resource_id: str, version_id: str) -> None:
        _pause("load_version")
        files = json.loads(self.context.store.get_blob(version_id))
        work = self.work(resource_id)
        shutil.rmtree(work)
        work.mkdir()
        for name, data in files.items():
            path = work / os.fsdecode(name.encode("utf-8", "surrogateescape"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(base64.b64decode(data))
        self._state(resource_id).write_text(version_id)

    def missing_versions(self, version_ids: Collection[str]) -> set[str]:
        return {v for v in version_ids if not self.context.store.verify_blob(v)}

    def export_versions(self, version_ids: Sequence[str], into: Path, *, have: Collection[str] = ()) -> list[Layer]:
        layers = []
        for version in version_ids:
            if version in have:
                continue
            if self.missing_versions([version]):
                raise StoreError(f"testfiles version {version} is missing")
            path = into / version.removeprefix(ids.PREFIX)
            shutil.copyfile(self.context.store.blob_path(version), path)
            layers.append(Layer(MEDIA_TYPE, path, version, path.stat().st_size))
        return layers

    def import_versions(self, layers: Sequence[Layer]) -> None:
        _pause("import_versions")
        for layer in layers:
            data = layer.path.read_bytes()
            if layer.media_type != MEDIA_TYPE or ids.digest_bytes(data) != layer.digest:
                raise StoreError(f"testfiles layer {layer.digest} does not hold a version")
            with self.context.store.write():
                self.context.store.put_blob(data)
                self.context.store.add_refs(OWNER, [layer.digest])


def _pause(where: str) -> None:
    """Fault injection for the kill tests: ``PAUSE=where:marker`` writes the marker there, then waits to be killed."""
    spec = os.environ.get(PAUSE, "")
    if spec.partition(":")[0] == where:
        Path(spec.partition(":")[2]).write_text(str(os.getpid()))
        time.sleep(60)


IMAGE_LAYOUT = "application/vnd.oci.image.layout.v1.tar"
VERSIONS_KEY = "org.domarkx.test.versions"


class ImagesPlugin(FilesPlugin):
    """The same files, but versions travel as images in an OCI image layout tar, as ``docker_sandbox``'s do."""

    @property
    def type(self) -> str:
        return "testimages"

    def export_versions(self, version_ids: Sequence[str], into: Path, *, have: Collection[str] = ()) -> list[Layer]:
        wanted = [v for v in version_ids if v not in have]
        blobs: dict[str, bytes] = {}
        entries = []
        for version in wanted:
            data = self.context.store.get_blob(version)
            config = ids.canonical_json({"architecture": "amd64", "os": "linux", "domarkx-test": version})
            blobs[version], blobs[ids.digest_bytes(config)] = data, config
            manifest = ids.canonical_json(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
                    "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", data)],
                }
            )
            blobs[ids.digest_bytes(manifest)] = manifest
            entries.append(_descriptor("application/vnd.oci.image.manifest.v1+json", manifest))
        index = ids.canonical_json({"schemaVersion": 2, "manifests": entries})
        path = into / "layout.tar"
        with tarfile.open(path, "w") as tar:
            _member(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            _member(tar, "index.json", index)
            for digest, data in sorted(blobs.items()):
                _member(tar, "blobs/sha256/" + digest.removeprefix(ids.PREFIX), data)
        return [
            Layer(
                IMAGE_LAYOUT,
                path,
                ids.digest_bytes(path.read_bytes()),
                path.stat().st_size,
                {VERSIONS_KEY: " ".join(wanted)},
            )
        ]

    def import_versions(self, layers: Sequence[Layer]) -> None:
        for layer in layers:
            if layer.media_type != IMAGE_LAYOUT or ids.digest_bytes(layer.path.read_bytes()) != layer.digest:
                raise StoreError(f"testimages layer {layer.digest} does not hold images")
            with tarfile.open(layer.path) as tar:
                index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
                for entry in index["manifests"]:
                    manifest = json.loads(_blob(tar, entry["digest"]))
                    version = manifest["layers"][0]["digest"]
                    data = _blob(tar, version)
                    with self.context.store.write():
                        self.context.store.put_blob(data)
                        self.context.store.add_refs(OWNER, [version])


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": ids.digest_bytes(data), "size": len(data)}


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _blob(tar: tarfile.TarFile, digest: str) -> bytes:
    data = tar.extractfile("blobs/sha256/" + digest.removeprefix(ids.PREFIX)).read()  # type: ignore[union-attr]
    if ids.digest_bytes(data) != digest:
        raise StoreError(f"testimages blob {digest} does not match its digest")
    return data
