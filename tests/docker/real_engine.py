"""The Docker engine the real-engine tests use, seen from outside the plugin."""

from __future__ import annotations

import io
import secrets
import tarfile
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Engine:
    """The engine the tests use, and a client of it for looking behind the plugin's back."""

    api: Any
    image: str
    nonroot_image: str

    def state(self) -> tuple[set[str], set[str]]:
        """Every container and every image (tags included) on the engine."""
        containers = {c["Id"] for c in self.api.containers(all=True)}
        images = {f"{i['Id']} {sorted(i.get('RepoTags') or [])}" for i in self.api.images(all=True)}
        return containers, images

    def derived_image(self, marker: str) -> str:
        """A base image of the test's own (the busybox one plus a file), tagged ``domarkx-test/base-…:1``."""
        created = self.api.create_container(self.image, command=["true"])
        try:
            self.api.put_archive(created["Id"], "/", _tar({"marker.txt": marker.encode()}))
            name = f"domarkx-test/base-{secrets.token_hex(4)}"
            self.api.commit(created["Id"], repository=name, tag="1")
        finally:
            self.api.remove_container(created["Id"], force=True)
        return f"{name}:1"


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
