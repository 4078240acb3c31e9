"""The plugins of one home, each loaded once, and the stored workspace versions they made.

This is the part of :class:`domarkx.workspace.manager.WorkspaceManager` that
reading versions needs (``domarkx diff``, ``log --stat``): it builds no
workspace, so it imports none of the manager's pydantic models, and a command
that only compares versions starts without pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from domarkx import _entrypoints
from domarkx.errors import DomarkxError, ReferenceNotFound
from domarkx.workspace.plugin import Plugin, PluginContext

if TYPE_CHECKING:
    from domarkx.data.store import Store
    from domarkx.data.versions import VersionRow


class PluginHost:
    """Loads plugins for a store and reads its workspace versions (without loading them)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._plugins: dict[str, Plugin] = {}

    def plugin(self, plugin_type: str) -> Plugin:
        """The plugin instance for a resource type (loaded once per host)."""
        found = self._plugins.get(plugin_type)
        if found is None:
            cls = _entrypoints.load(_entrypoints.PLUGINS, plugin_type, what="plugin")
            if not (isinstance(cls, type) and issubclass(cls, Plugin)):
                raise DomarkxError(f"plugin {plugin_type!r} is not a domarkx.workspace.plugin.Plugin")
            found = cls(PluginContext(home=self.store.home, store=self.store, plugin_type=plugin_type))
            self._plugins[plugin_type] = found
        return found

    def has_version(self, version_id: str) -> bool:
        """Whether ``version_id`` is a stored workspace version."""
        return self.store.versions.exists(version_id)

    def version_info(self, version_id: str) -> dict[str, tuple[str, str]]:
        """Resource name → (plugin type, resource version) of a stored workspace version."""
        row = self._version(version_id)
        return {name: (row.types[name], version) for name, version in row.versions.items()}

    def _version(self, version_id: str) -> VersionRow:
        found = self.store.versions.get(version_id)
        if found is None:
            raise ReferenceNotFound(f"no workspace version {version_id}")
        return found
