"""Plugins that exist only for tests, registered for one test at a time (see :func:`registered`)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from domarkx import _entrypoints, ids
from domarkx.workspace.plugin import Entry, Plugin, Resource, ToolSpec
from domarkx.workspace.plugins._state import STATE_FILE


@contextlib.contextmanager
def registered(monkeypatch: pytest.MonkeyPatch, name: str, cls: type[Plugin]) -> Iterator[None]:
    """``cls`` installed as plugin ``name`` (through the entry-point table, as a third party's would be)."""
    point = EntryPoint(name=name, value=f"{cls.__module__}:{cls.__qualname__}", group=_entrypoints.PLUGINS)
    with monkeypatch.context() as patched:
        patched.setitem(_entrypoints._group(_entrypoints.PLUGINS), name, point)
        yield


class Notebook(Plugin):
    """Files in a JSON document; every version is kept, so versions can be browsed and diffed."""

    @property
    def type(self) -> str:
        return "notebook"

    def _files(self, resource_id: str) -> dict[str, str]:
        state = self.context.resource_dir(resource_id) / STATE_FILE
        return dict(json.loads(state.read_text())) if state.exists() else {}

    def _version_path(self, version_id: str) -> Any:
        return self.context.plugin_dir(self.type) / version_id.removeprefix(ids.PREFIX)

    def create_resource(self, config: dict[str, Any]) -> Resource:
        resource_id = f"notebook-{uuid.uuid4().hex}"
        (self.context.resource_dir(resource_id) / STATE_FILE).write_text("{}")
        return Resource(id=resource_id, name=self.type, type=self.type)

    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        schema = {"type": "object", "properties": {"path": {"type": "string"}, "text": {"type": "string"}}}
        return [ToolSpec(name="put", description="Write a file.", parameters=schema)]

    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        files = self._files(resource_id)
        files[kwargs["path"]] = kwargs["text"]
        (self.context.resource_dir(resource_id) / STATE_FILE).write_text(json.dumps(files))
        return "ok"

    def get_version(self, resource_id: str) -> str:
        return self.commit_version(resource_id)

    def commit_version(self, resource_id: str) -> str:
        files = self._files(resource_id)
        version = ids.digest_json(files)
        self._version_path(version).write_text(json.dumps(files))
        return version

    def load_version(self, resource_id: str, version_id: str) -> None:
        (self.context.resource_dir(resource_id) / STATE_FILE).write_text(self._version_path(version_id).read_text())

    def destroy_resource(self, resource_id: str) -> None:
        (self.context.resource_dir(resource_id) / STATE_FILE).unlink(missing_ok=True)

    def list_version(self, version_id: str, path: bytes = b"") -> list[Entry]:
        files = json.loads(self._version_path(version_id).read_text())
        return [Entry(name=name.encode(), kind="file", size=len(text)) for name, text in sorted(files.items())]

    def read_version(self, version_id: str, path: bytes) -> bytes:
        return str(json.loads(self._version_path(version_id).read_text())[path.decode()]).encode()


class Opaque(Notebook):
    """Like :class:`Notebook`, but its versions cannot be browsed (the protocol's default)."""

    @property
    def type(self) -> str:
        return "opaque"

    list_version = Plugin.list_version  # type: ignore[assignment]
    read_version = Plugin.read_version


class Clashing(Notebook):
    """A plugin with a tool named like a session tool of the MCP server."""

    @property
    def type(self) -> str:
        return "clashing"

    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        return [ToolSpec(name="log", description="Log something.", parameters={"type": "object", "properties": {}})]
