"""The plugin protocol: how a resource type plugs into a workspace.

A :class:`Plugin` manages every resource of one type. It is stateless between
calls: everything about a resource lives on disk under
``context.resource_dir(resource_id)`` (or in the engine it drives), so a later
``domarkx`` process can pick the resource up again by id.

The six methods of the design (``type``, ``create_resource``, ``execute_tool``,
``get_version``, ``commit_version``, ``load_version``) are joined by the three
that a real implementation needs: ``list_tools`` (JSON schemas for the model),
``destroy_resource`` (tear-down) and ``close`` (release processes, keep state).

Two rules every plugin keeps, because instances and forks rely on them:

* ``commit_version`` is idempotent: with no change since the last commit it
  returns the same version id.
* A version committed by one resource can be loaded into any other resource of
  the same plugin in the same home; that is how ``fork`` gives a new instance
  the workspace of an old one.
"""

from __future__ import annotations

import abc
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from domarkx.errors import DomarkxError

if TYPE_CHECKING:
    from domarkx.data.store import Store


class ToolError(DomarkxError):
    """A tool call that failed in a way the model should see (bad path, time-out, …).

    The workspace manager turns it into an error tool result; it never ends a turn.
    """


class Resource(BaseModel):
    """One resource of a workspace, as stored."""

    model_config = ConfigDict(extra="forbid")

    id: str
    """Unique in the home: the plugin's key to the resource's state."""
    name: str
    """Unique in its workspace: prefixes tool names when a workspace has several resources."""
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class ToolSpec(BaseModel):
    """A tool a resource offers, described for a model's function calling."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str
    parameters: dict[str, Any]
    """A JSON-schema object describing the keyword arguments."""


def resource_path(home: Path, resource_id: str) -> Path:
    """Where one resource keeps its private state: the one place the layout is spelled."""
    return home / "resources" / resource_id


@dataclass(frozen=True)
class PluginContext:
    """What a plugin gets from domarkx: where to keep state, and the blob store."""

    home: Path
    store: Store

    def resource_dir(self, resource_id: str) -> Path:
        """The private directory of one resource (created on demand)."""
        path = resource_path(self.home, resource_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def plugin_dir(self, plugin_type: str) -> Path:
        """State shared by every resource of one plugin (e.g. a shared object store)."""
        path = self.home / "plugins" / plugin_type
        path.mkdir(parents=True, exist_ok=True)
        return path


class Plugin(abc.ABC):
    """Base class of every resource plugin; register it under ``domarkx.plugins``."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context

    @property
    @abc.abstractmethod
    def type(self) -> str:
        """The resource type this plugin manages, as written in ``workspace-config``."""

    @abc.abstractmethod
    def create_resource(self, config: dict[str, Any]) -> Resource:
        """Create a resource from its ``workspace-config`` item (``type``/``name`` removed).

        Invalid config raises :class:`domarkx.errors.UsageError`.
        """

    @abc.abstractmethod
    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        """The tools the resource offers, with JSON schemas for their arguments."""

    @classmethod
    def describe_tools(cls) -> list[ToolSpec]:
        """The tools a resource of this plugin typically offers, known without creating one.

        ``domarkx plugins`` lists these; a plugin whose tools depend on a
        resource's config returns the common ones (the default: none known).
        """
        return []

    @abc.abstractmethod
    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        """Run a tool; the result must be JSON-serialisable. Raise :class:`ToolError` on failure."""

    @abc.abstractmethod
    def get_version(self, resource_id: str) -> str:
        """The version the resource was last committed at or loaded from."""

    @abc.abstractmethod
    def commit_version(self, resource_id: str) -> str:
        """Record the resource's current state as an immutable version; return its id."""

    @abc.abstractmethod
    def load_version(self, resource_id: str, version_id: str) -> None:
        """Restore the resource to a version committed by any resource of this plugin."""

    @abc.abstractmethod
    def destroy_resource(self, resource_id: str) -> None:
        """Tear the resource down and delete its private state (versions stay)."""

    def close(self, resource_id: str) -> None:  # noqa: B027 - optional hook, default is nothing to release
        """Release processes or connections held for the resource; its state stays."""

    def missing_versions(self, version_ids: Collection[str]) -> set[str]:
        """Which of these versions could no longer be loaded (``domarkx doctor`` asks, once per plugin).

        The default knows of none missing; a plugin whose versions live outside
        the blob store (a git repository, an image registry) should look.
        """
        return set()
