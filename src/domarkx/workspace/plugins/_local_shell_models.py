"""The pydantic side of ``local_shell``: its config, its state file and its tools.

:mod:`.local_shell` imports this module only where it validates, reads or
writes one of these (creating a resource, a tool call, a commit), so loading
the plugin to read its versions (``domarkx diff``) starts without pydantic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domarkx.tools.schema import object_schema
from domarkx.workspace.plugin import ToolSpec


class LocalShellConfig(BaseModel):
    """``workspace-config`` options of a ``local_shell`` resource."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # state.json is JSON: no infinities

    timeout: float = Field(60.0, gt=0)
    """Seconds a command may run when the call gives no ``timeout``."""
    max_timeout: float = Field(600.0, gt=0)
    """The most a call may ask for."""
    max_output: int = Field(100_000, ge=1000, le=100_000_000)
    """Bytes of output kept per command (head and tail), and of a file ``read_file`` returns."""
    sandbox: Literal["auto", "bwrap", "none"] = "auto"
    """``auto``: bubblewrap if it works here, else unconfined with a warning."""
    max_size: int | None = Field(None, ge=1)
    """Bytes the work tree may hold: no file a command writes grows past it, and a call that leaves
    the tree larger is undone (its changes never reach the store). ``None``: no limit."""
    files: dict[str, str] = Field(default_factory=dict)
    """Files to start with: relative path → text."""


class LocalShellState(BaseModel):
    """What a resource keeps in its state file: its config and the version its work tree is at."""

    model_config = ConfigDict(extra="forbid")

    config: LocalShellConfig
    version: str | None = None
    tree: str | None = None
    empty_dirs: list[str] = Field(default_factory=list)
    """Empty directories of the current version, each written with :func:`domarkx.paths.escape`."""
    dirty: bool = False
    """A tool may have changed the work tree since the last commit or load."""


_PATH = {"type": "string", "description": "Path relative to the workspace directory."}
TOOLS = [
    ToolSpec(
        name="run_command",
        description="Run a bash command in the workspace directory; returns exit code, stdout and stderr.",
        parameters=object_schema(
            {
                "command": {"type": "string", "description": "The command line, run with `bash -c`."},
                "timeout": {"type": "number", "description": "Seconds before the command is killed."},
            },
            ["command"],
        ),
    ),
    ToolSpec(
        name="read_file",
        description="Read a text file of the workspace.",
        parameters=object_schema({"path": _PATH}, ["path"]),
    ),
    ToolSpec(
        name="write_file",
        description="Create or overwrite a file of the workspace with the given text.",
        parameters=object_schema({"path": _PATH, "content": {"type": "string"}}, ["path", "content"]),
    ),
    ToolSpec(
        name="edit_file",
        description="Replace the single occurrence of old_text in a file with new_text.",
        parameters=object_schema(
            {"path": _PATH, "old_text": {"type": "string"}, "new_text": {"type": "string"}},
            ["path", "old_text", "new_text"],
        ),
    ),
    ToolSpec(
        name="list_dir",
        description="List a directory of the workspace (default: its top).",
        parameters=object_schema({"path": _PATH}, []),
    ),
]
