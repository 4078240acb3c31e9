"""``mcp``: an MCP server as a resource; its tools are offered to the model like any resource's.

```workspace-config
resources:
  - type: mcp
    name: notes
    command: npx                       # stdio: a program the document picks…
    args: ["-y", "some-mcp-server"]
    env: {LOG_LEVEL: "warn"}           # …with only these variables beside a minimal environment
    sandbox: auto                      # confined like local_shell commands (bubblewrap)
  - type: mcp
    name: search
    url: http://127.0.0.1:9000/mcp     # or a streamable-HTTP server
```

Starting a program or reaching a server the document chose is a power over
the user's machine, so both need the user's trust (:meth:`McpPlugin.powers`).

The server's state lives in the server, out of domarkx's reach: the resource
is not ``restorable``. Its version names its configuration only (so a session
re-run gives the same workspace versions); loading a version changes nothing,
and ``fork``/``reset`` warn with the messages whose calls reached it.

A connection is opened on the first call in a process and kept for the
process's life (a server's own state, such as an open browser page, lasts
between calls); ``close`` ends it. The server's tools are listed once, when
the resource is created, and kept in its state: a model sees the same tools
in every process, and listing costs no connection.
"""

from __future__ import annotations

import json
import re
import shlex
import uuid
from collections.abc import Collection, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domarkx import ids
from domarkx.workspace.plugin import Layer, Plugin, Resource, ToolError, ToolSpec, resource_path
from domarkx.workspace.plugins._gitstore import remove_path
from domarkx.workspace.plugins._state import parse_config, read_state, write_state

TYPE = "mcp"
_NAME_RE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_NAME = 40


class McpConfig(BaseModel):
    """``workspace-config`` options of an ``mcp`` resource: ``command`` (stdio) or ``url`` (HTTP)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    command: str | None = Field(None, min_length=1)
    """The program that serves MCP on its stdin and stdout."""
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    """Variables the program gets beside PATH, HOME, LANG and TERM; nothing else of yours."""
    url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    """A streamable-HTTP MCP endpoint; no credentials are sent to it."""
    sandbox: Literal["auto", "bwrap", "none"] = "auto"
    """For ``command``: as local_shell's (bubblewrap: no network, only its work directory writable)."""
    timeout: float = Field(60.0, gt=0, le=86_400)
    """Seconds to connect, and for each call."""
    max_output: int = Field(100_000, ge=1000, le=100_000_000)
    """Characters of a call's result that are kept."""

    @model_validator(mode="after")
    def _one_server(self) -> McpConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a program to start) or url (a server to reach)")
        if self.url is not None and (self.args or self.env or self.sandbox != "auto"):
            raise ValueError("args, env and sandbox apply to a command, not to a url")
        return self


class RemoteTool(BaseModel):
    """A tool of the server, under the name the model sees (letters, digits, ``_`` and ``-``)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    remote: str
    description: str
    parameters: dict[str, Any]


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: McpConfig
    tools: list[RemoteTool]


class McpPlugin(Plugin):
    """Tools of an MCP server (a program started confined, or a URL); its state is the server's own."""

    restorable = False
    config_model = McpConfig

    @property
    def type(self) -> str:
        return TYPE

    @classmethod
    def powers(cls, options: dict[str, Any]) -> list[str]:
        command, url = options.get("command"), options.get("url")
        found: list[str] = []
        if command is not None:
            args = options.get("args")
            argv = [str(command), *(str(a) for a in args)] if isinstance(args, list) else [str(command)]
            confined = " unconfined" if options.get("sandbox") == "none" else ""
            found.append(f"starts the program `{shlex.join(argv)}`{confined}")
        if url is not None:
            found.append(f"connects to the MCP server at {url}")
        return found

    @cached_property
    def _links(self) -> Any:
        from domarkx.workspace.plugins import _mcp_client

        return _mcp_client

    # -- lifecycle -----------------------------------------------------------------

    def create_resource(self, config: dict[str, Any]) -> Resource:
        options = parse_config(McpConfig, config, TYPE)
        resource_id = f"{TYPE}-{uuid.uuid4().hex}"
        base = self.context.resource_dir(resource_id)
        try:
            (base / "work").mkdir()
            listed = self._links.connection(base, options).list_tools()
            write_state(base, _State(config=options, tools=_named(listed)))
        except BaseException:
            self.destroy_resource(resource_id)
            raise
        return Resource(id=resource_id, name=TYPE, type=TYPE, config=options.model_dump(mode="json"))

    def destroy_resource(self, resource_id: str) -> None:
        base = self._dir(resource_id)
        self._links.disconnect(base)
        remove_path(base)

    def close(self, resource_id: str) -> None:
        self._links.disconnect(self._dir(resource_id))

    def _dir(self, resource_id: str) -> Path:
        return resource_path(self.context.home, resource_id)

    def location(self, resource_id: str) -> str:
        config = read_state(self._dir(resource_id), _State).config
        return config.url or str(self._dir(resource_id) / "work")

    # -- tools -----------------------------------------------------------------------

    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        state = read_state(self._dir(resource_id), _State)
        return [ToolSpec(name=t.name, description=t.description, parameters=t.parameters) for t in state.tools]

    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        base = self._dir(resource_id)
        state = read_state(base, _State)
        tool = next((t for t in state.tools if t.name == tool_name), None)
        if tool is None:
            raise ToolError(f"the MCP server has no tool {tool_name!r}")
        text, failed = self._links.connection(base, state.config).call(tool.remote, kwargs)
        if len(text) > state.config.max_output:
            cut = len(text) - state.config.max_output
            text = text[: state.config.max_output] + f"\n[… {cut} more characters cut]"
        if failed:
            raise ToolError(text or f"{tool_name} failed")
        return text

    # -- versions: the configuration, never the state ----------------------------------

    def get_version(self, resource_id: str) -> str:
        return ids.digest_json({TYPE: read_state(self._dir(resource_id), _State).config.model_dump(mode="json")})

    def commit_version(self, resource_id: str) -> str:
        return self.get_version(resource_id)

    def load_version(self, resource_id: str, version_id: str) -> None:
        """Nothing to restore: the server keeps its own state (see the module docstring)."""

    def export_versions(self, version_ids: Sequence[str], into: Path, *, have: Collection[str] = ()) -> list[Layer]:
        """Nothing travels: a version is only the name of a configuration the document carries."""
        return []

    def import_versions(self, layers: Sequence[Layer]) -> None:
        """Nothing to take in (see :meth:`export_versions`)."""


def _named(listed: list[tuple[str, str, dict[str, Any]]]) -> list[RemoteTool]:
    """The server's tools under names a model API accepts, unique, kept short enough to prefix."""
    taken: set[str] = set()
    found: list[RemoteTool] = []
    for remote, description, schema in listed:
        base = _NAME_RE.sub("_", remote)[:_MAX_NAME] or "tool"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base[: _MAX_NAME - len(str(n)) - 1]}_{n}"
        taken.add(name)
        about = description if name == remote else f"{description} (the server calls it {json.dumps(remote)})"
        found.append(RemoteTool(name=name, remote=remote, description=about.strip(), parameters=schema))
    return found
