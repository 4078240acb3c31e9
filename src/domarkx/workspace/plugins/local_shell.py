"""``local_shell``: a private working directory with file tools and a shell.

The default resource. Each resource owns a work tree under its resource
directory; versions are git commits in the home's shared object store (see
:mod:`._gitstore`), commands run through :mod:`._sandbox`, and the tools
themselves are the portable ones from :mod:`domarkx.tools.portable`.
"""

from __future__ import annotations

import inspect
import os
import shutil
import uuid
from collections.abc import Callable, Collection
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from domarkx.errors import UsageError
from domarkx.tools.portable import files, shell
from domarkx.tools.schema import object_schema
from domarkx.workspace.plugin import CodeRunner, Plugin, Resource, ToolError, ToolSpec, emit_output, resource_path
from domarkx.workspace.plugins import _sandbox
from domarkx.workspace.plugins._gitstore import GitStore, Snapshot, remove_path
from domarkx.workspace.plugins._state import parse_config, read_state, write_state

TYPE = "local_shell"


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
    files: dict[str, str] = Field(default_factory=dict)
    """Files to start with: relative path → text."""


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: LocalShellConfig
    version: str | None = None
    tree: str | None = None
    empty_dirs: list[str] = Field(default_factory=list)
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


class LocalShellPlugin(Plugin):
    """A private working directory with a shell, versioned with git, confined with bubblewrap."""

    code = CodeRunner(
        tool="run_command", argument="command", languages=frozenset({"sh", "shell", "bash", "zsh", "console"})
    )
    config_model = LocalShellConfig

    @property
    def type(self) -> str:
        return TYPE

    @classmethod
    def describe_tools(cls) -> list[ToolSpec]:
        return list(TOOLS)

    @cached_property
    def _git(self) -> GitStore:
        return GitStore(self.context.plugin_dir(TYPE) / "objects.git")

    def _dir(self, resource_id: str) -> Path:
        return resource_path(self.context.home, resource_id)

    def _paths(self, resource_id: str) -> tuple[Path, Path]:
        """The work tree and the index file of a resource."""
        base = self._dir(resource_id)
        return base / "work", base / "index"

    def work_dir(self, resource_id: str) -> Path:
        """Where the resource's files live (for callers that want to look, such as tests)."""
        return self._paths(resource_id)[0]

    def location(self, resource_id: str) -> str:
        return str(self.work_dir(resource_id))

    # -- lifecycle -----------------------------------------------------------------

    def create_resource(self, config: dict[str, Any]) -> Resource:
        options = parse_config(LocalShellConfig, config, TYPE)
        if options.sandbox == "bwrap" and not _sandbox.bwrap_works():
            raise UsageError(
                "local_shell sandbox 'bwrap' was asked for, but bubblewrap cannot run here",
                hint="install bubblewrap (apt-get install bubblewrap) or use sandbox: auto",
            )
        resource_id = f"{TYPE}-{uuid.uuid4().hex}"
        base = self.context.resource_dir(resource_id)
        work = base / "work"
        work.mkdir()
        try:
            for path, text in options.files.items():
                _check_writable(path)
                files.write_file(path, text, root=str(work))
        except (ValueError, OSError) as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise UsageError(f"local_shell files: {exc}") from exc
        try:
            write_state(base, _State(config=options))
            self.commit_version(resource_id)
        except BaseException:  # a full disk, say: leave nothing behind that no row names
            remove_path(base)
            raise
        return Resource(id=resource_id, name=TYPE, type=TYPE, config=options.model_dump(mode="json"))

    def destroy_resource(self, resource_id: str) -> None:
        remove_path(self._dir(resource_id))

    # -- versions --------------------------------------------------------------------

    def get_version(self, resource_id: str) -> str:
        state = read_state(self._dir(resource_id), _State)
        if state.version is None:
            raise UsageError(f"resource {resource_id} has no version yet")
        return state.version

    def commit_version(self, resource_id: str) -> str:
        base = self._dir(resource_id)
        state = read_state(base, _State)
        work, index = self._paths(resource_id)
        snapshot = self._git.stage(work, index)
        if state.version is not None and _same(state, snapshot):
            if state.dirty:  # the index describes the work tree again, and it is this version
                self._record(base, state, state.version, snapshot)
            return state.version
        commit = self._git.commit(snapshot, state.version)
        self._record(base, state, commit, snapshot)
        return commit

    def missing_versions(self, version_ids: Collection[str]) -> set[str]:
        return self._git.missing(version_ids)

    def load_version(self, resource_id: str, version_id: str) -> None:
        """Check ``version_id`` out, writing only what differs from the current version.

        After tool calls that could have changed anything, files the index does
        not know are deleted and changed tracked files rewritten too (like
        ``git checkout -f`` followed by ``git clean -fdx``).
        """
        base = self._dir(resource_id)
        state = read_state(base, _State)
        work, index = self._paths(resource_id)
        target = self._git.read(version_id)
        stale: list[str] = []
        current_empty = tuple(state.empty_dirs)
        if state.dirty:
            stale, current_empty = self._git.discard_untracked(work, index), ()
        else:
            self._mark_dirty(base, state)  # until the switch completes, the tree is in between
        self._git.switch(work, index, current_empty, target, stale)
        self._record(base, state, version_id, target)

    @staticmethod
    def _record(base: Path, state: _State, commit: str, snapshot: Snapshot) -> None:
        state.version, state.tree, state.empty_dirs = commit, snapshot.tree, list(snapshot.empty_dirs)
        state.dirty = False
        write_state(base, state)

    @staticmethod
    def _mark_dirty(base: Path, state: _State) -> None:
        if not state.dirty:
            state.dirty = True
            write_state(base, state)

    # -- tools -----------------------------------------------------------------------

    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        return list(TOOLS)

    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        state = read_state(self._dir(resource_id), _State)
        work = self.work_dir(resource_id)
        handlers: dict[str, Callable[..., Any]] = {
            "run_command": lambda command, timeout=None: self._run_command(work, state.config, command, timeout),
            "read_file": lambda path: files.read_file(path, root=str(work), max_bytes=state.config.max_output),
            "write_file": lambda path, content: files.write_file(_check_writable(path, work), content, root=str(work)),
            "edit_file": lambda path, old_text, new_text: files.edit_file(
                _check_writable(path, work), old_text, new_text, root=str(work)
            ),
            "list_dir": lambda path=".": files.list_dir(path, root=str(work)),
        }
        handler = handlers.get(tool_name)
        if handler is None:
            raise ToolError(f"local_shell has no tool {tool_name!r}", hint=f"tools: {', '.join(handlers)}")
        try:
            inspect.signature(handler).bind(**kwargs)
        except TypeError as exc:
            raise ToolError(f"{tool_name}: {exc}") from exc
        if tool_name in _CHANGING_TOOLS:
            self._mark_dirty(self._dir(resource_id), state)
        try:
            return handler(**kwargs)
        except files.OutsideRootError as exc:
            raise ToolError(f"refused: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise ToolError(f"{tool_name}: {exc}") from exc
        except OSError as exc:
            raise ToolError(f"{tool_name}: {_describe_os_error(exc, kwargs.get('path'))}") from exc

    def _run_command(self, work: Path, config: LocalShellConfig, command: str, timeout: Any) -> dict[str, Any]:
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
            raise ToolError("run_command: timeout must be a number of seconds")
        seconds = config.timeout if timeout is None else min(float(timeout), config.max_timeout)
        if not seconds > 0:  # also NaN, which would never time out
            raise ToolError("run_command: timeout must be a positive number of seconds")
        wrapper: list[str] = []
        env: dict[str, str] | None = None
        if config.sandbox != "none":
            if _sandbox.bwrap_works():
                wrapper, env = _sandbox.wrapper(work), shell.minimal_env(_sandbox.SANDBOX_TMP)
            elif config.sandbox == "bwrap":
                raise ToolError("run_command: bubblewrap was configured but cannot run here")
            else:
                _sandbox.warn_unconfined("bubblewrap (bwrap) is not available")
        return shell.run_command(
            command,
            cwd=str(work),
            timeout=seconds,
            max_output=config.max_output,
            env=env,
            wrapper=wrapper,
            on_output=emit_output,
        )


_CHANGING_TOOLS = frozenset({"run_command", "write_file", "edit_file"})


def _same(state: _State, snapshot: Snapshot) -> bool:
    return state.tree == snapshot.tree and tuple(state.empty_dirs) == snapshot.empty_dirs


def _check_writable(path: str, work: Path | None = None) -> str:
    """Refuse writes into ``.git``: git would neither store nor restore them."""
    parts = list(PurePosixPath(path).parts)
    if work is not None:
        full = files.resolve(path, str(work))
        parts += Path(full).relative_to(os.path.realpath(work)).parts
    if any(part.lower() == ".git" for part in parts):
        raise files.OutsideRootError(f"{path!r} is inside a .git directory, which the workspace does not keep")
    return path


def _describe_os_error(exc: OSError, path: Any) -> str:
    where = path if isinstance(path, str) else (exc.filename or "")
    if isinstance(exc, FileNotFoundError):
        return f"no such file or directory: {where}"
    if isinstance(exc, IsADirectoryError):
        return f"{where} is a directory"
    if isinstance(exc, NotADirectoryError):
        return f"{where} is not a directory"
    return f"{where}: {exc.strerror or exc}"
