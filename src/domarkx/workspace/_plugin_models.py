"""The pydantic models of the plugin protocol, :class:`Resource` and :class:`ToolSpec`.

Import them from :mod:`domarkx.workspace.plugin` (or ``domarkx``), which loads
this module on first use: they live apart so that a command that only reads
versions (``domarkx diff``) starts without importing pydantic.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
