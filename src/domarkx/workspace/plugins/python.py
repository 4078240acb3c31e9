"""The ``python`` resource: a Jupyter kernel whose versions are replayable cell logs.

A kernel's memory cannot be saved and restored, so a version is the *history*
that produced it: the list of cells executed since the resource was created
(or last loaded), stored as a blob. ``commit_version`` stores the log and
returns its digest (equal logs, equal ids: idempotent by construction);
``load_version`` restarts the kernel and replays the log.

Kernels are not kept alive between ``domarkx`` processes: a new process starts
a fresh kernel on the first tool call and replays the log silently. That costs
one kernel start (about a second) plus the run time of the logged cells, and in
exchange no kernel is left running when a command finishes. Replay is honest
about its limits: effects outside the kernel (files written, requests sent) are
not undone and happen again, and a cell whose outcome differs on replay
(success then, failure now) is reported.

On disk, under ``context.resource_dir(id)``::

    state.json   {"config": {...}, "version": "sha256:…"}
    cells.json   the executed-cell log: [{"code": …, "ok": true}, …]
    work/        the kernel's working directory
    home/        the kernel's HOME (IPython profile, caches)
    kernel.json  connection file of the kernel this process runs
    kernel.log   the kernel's own stdout/stderr
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domarkx import ids
from domarkx.errors import DomarkxError, ReferenceNotFound, StoreError, UsageError
from domarkx.tools.kernel import CellOutput, Kernel, KernelDied, confinement_available
from domarkx.tools.schema import parameters_schema
from domarkx.workspace.plugin import Plugin, Resource, ToolError, ToolSpec, resource_path
from domarkx.workspace.plugins._state import parse_config, read_state, write_state

_KERNELS: dict[Path, Kernel] = {}
"""Kernels this process runs, by resource directory: a cache, never the source of truth."""

Cell = dict[str, Any]


class PythonConfig(BaseModel):
    """The ``workspace-config`` options of a ``python`` resource."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(60.0, gt=0, le=86_400)
    """Seconds a cell may run: the default for a call and the most a call may ask for."""
    max_output: int = Field(20_000, ge=200)
    """Characters of output a call returns per stream; the middle of longer output is cut."""
    sandbox: Literal["auto", "bwrap", "none"] = "auto"
    """``auto``: confine the kernel with bubblewrap where it works, else run it unconfined with a warning."""


class PythonState(BaseModel):
    config: PythonConfig
    version: str = ""


class ExecutePythonArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Python source to run as one notebook cell.")
    timeout: float | None = Field(
        None, gt=0, description="Seconds before the cell is interrupted (at most the resource's limit)."
    )


EXECUTE_PYTHON = ToolSpec(
    name="execute_python",
    description=(
        "Run Python code in a persistent Jupyter kernel. Variables, imports and definitions "
        "persist between calls. Returns stdout, stderr, the value of the last expression and "
        "any error with its traceback."
    ),
    parameters=parameters_schema(ExecutePythonArgs),
)


class PythonPlugin(Plugin):
    """Resources that are IPython kernels, versioned by replayable cell logs."""

    @property
    def type(self) -> str:
        return "python"

    # -- lifecycle -----------------------------------------------------------------

    def create_resource(self, config: dict[str, Any]) -> Resource:
        parsed = parse_config(PythonConfig, config, self.type)
        if parsed.sandbox == "bwrap" and not confinement_available():
            raise UsageError(
                "python sandbox 'bwrap' was asked for, but bubblewrap cannot run here",
                hint="install bubblewrap (apt-get install bubblewrap) or use sandbox: auto",
            )
        resource_id = f"python-{secrets.token_hex(6)}"
        folder = self.context.resource_dir(resource_id)
        try:
            (folder / "work").mkdir()
            (folder / "home").mkdir()
            write_state(folder, PythonState(config=parsed))
            self._write_cells(resource_id, [])
            self.commit_version(resource_id)
        except BaseException:  # a full disk, say: leave nothing behind that no row names
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return Resource(id=resource_id, name=self.type, type=self.type, config=parsed.model_dump())

    def destroy_resource(self, resource_id: str) -> None:
        self.close(resource_id)
        shutil.rmtree(self._dir(resource_id), ignore_errors=True)

    def close(self, resource_id: str) -> None:
        kernel = _KERNELS.pop(self._dir(resource_id), None)
        if kernel is not None:
            kernel.shutdown()

    # -- tools ---------------------------------------------------------------------

    @classmethod
    def describe_tools(cls) -> list[ToolSpec]:
        return [EXECUTE_PYTHON]

    @classmethod
    def powers(cls, options: dict[str, Any]) -> list[str]:
        return ["sandbox: none (the kernel runs unconfined, as you)"] if options.get("sandbox") == "none" else []

    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        return self.describe_tools()

    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        if tool_name != EXECUTE_PYTHON.name:
            raise ToolError(f"the python resource has no tool {tool_name!r}", hint="its tool: execute_python")
        try:
            args = ExecutePythonArgs.model_validate(kwargs)
        except ValidationError as exc:
            raise ToolError(f"bad arguments for execute_python: {exc.errors()[0]['msg']}") from exc
        return self.execute_python(resource_id, args.code, timeout=args.timeout)

    def execute_python(self, resource_id: str, code: str, *, timeout: float | None = None) -> str:
        """Run one cell and log it; the text returned is what the model reads."""
        config = self._config(resource_id)
        limit = config.timeout if timeout is None else min(timeout, config.timeout)
        kernel, problems = self._running_kernel(resource_id)
        notices = [f"the kernel was restarted and its history replayed, but {p}" for p in problems]
        try:
            out = kernel.execute(code, timeout=limit, limit=config.max_output)
        except KernelDied as exc:
            _KERNELS.pop(self._dir(resource_id), None)
            raise ToolError(
                f"the Python kernel died while running the cell ({exc.message}); its variables are lost, "
                "and the next call starts a new kernel and replays the earlier cells"
            ) from exc
        if out.timed_out:
            notices.append(
                f"the cell timed out after {limit:g} s and was interrupted; it is not kept in the history, "
                "so its partial effects are not replayed"
            )
        else:
            self._write_cells(resource_id, [*self._cells(resource_id), {"code": code, "ok": out.error is None}])
        return format_output(out, notices)

    def kernel(self, resource_id: str) -> Kernel:
        """The resource's running kernel (started and replayed if need be), for tool executors."""
        return self._running_kernel(resource_id)[0]

    # -- versions ------------------------------------------------------------------

    def get_version(self, resource_id: str) -> str:
        return self._state(resource_id).version

    def commit_version(self, resource_id: str) -> str:
        data = ids.canonical_json(self._cells(resource_id))
        store = self.context.store
        with store.write():
            version = store.put_blob(data)
            store.add_refs(f"plugin:{self.type}", [version])
        self._set_version(resource_id, version)
        return version

    def load_version(self, resource_id: str, version_id: str) -> None:
        cells = self._read_version(version_id)
        self.close(resource_id)
        self._write_cells(resource_id, cells)
        self._set_version(resource_id, version_id)
        _, problems = self._running_kernel(resource_id)
        if problems:
            raise DomarkxError(
                f"version {ids.short(version_id)} was loaded but did not replay exactly: {problems[0]}"
                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                hint="cells that depend on files, time, randomness or the network may behave differently",
            )

    def _read_version(self, version_id: str) -> list[Cell]:
        if not ids.is_digest(version_id):
            raise UsageError(f"{version_id!r} is not a python resource version", hint="versions are sha256 ids")
        try:
            cells = json.loads(self.context.store.get_blob(version_id))
        except StoreError as exc:
            raise ReferenceNotFound(f"no python resource version {ids.short(version_id)} in the store") from exc
        except ValueError as exc:
            raise UsageError(f"{ids.short(version_id)} is not a python resource version") from exc
        if not isinstance(cells, list) or not all(_is_cell(c) for c in cells):
            raise UsageError(f"{ids.short(version_id)} is not a python resource version")
        return cells

    # -- kernel --------------------------------------------------------------------

    def _running_kernel(self, resource_id: str) -> tuple[Kernel, list[str]]:
        """This process's kernel for the resource; a new one replays the log first.

        Returns the kernel and the replay problems found, one line each.
        """
        folder = self._dir(resource_id)
        kernel = _KERNELS.get(folder)
        if kernel is not None and kernel.is_alive():
            return kernel, []
        confined = {"auto": None, "bwrap": True, "none": False}[self._config(resource_id).sandbox]
        kernel = Kernel.start(cwd=folder / "work", home=folder / "home", state_dir=folder, confined=confined)
        _KERNELS[folder] = kernel
        return kernel, self._replay(resource_id, kernel)

    def _replay(self, resource_id: str, kernel: Kernel) -> list[str]:
        config = self._config(resource_id)
        problems: list[str] = []
        for number, cell in enumerate(self._cells(resource_id), start=1):
            try:
                out = kernel.execute(cell["code"], timeout=config.timeout, silent=True)
            except KernelDied as exc:
                _KERNELS.pop(self._dir(resource_id), None)
                raise DomarkxError(
                    f"replaying the python history: cell {number} killed the kernel ({exc.message})"
                ) from exc
            if out.timed_out:
                problems.append(f"cell {number} timed out on replay")
            elif (out.error is None) != cell["ok"]:
                outcome = out.error or "no error"
                problems.append(f"cell {number} gave {outcome} on replay, unlike its first run")
        return problems

    # -- state on disk -------------------------------------------------------------

    def _dir(self, resource_id: str) -> Path:
        return resource_path(self.context.home, resource_id)

    def _state(self, resource_id: str) -> PythonState:
        return read_state(self._dir(resource_id), PythonState)

    def _config(self, resource_id: str) -> PythonConfig:
        return self._state(resource_id).config

    def _set_version(self, resource_id: str, version: str) -> None:
        write_state(self._dir(resource_id), PythonState(config=self._config(resource_id), version=version))

    def _cells(self, resource_id: str) -> list[Cell]:
        self._state(resource_id)  # a clear error for a destroyed resource
        cells: list[Cell] = json.loads((self._dir(resource_id) / "cells.json").read_text())
        return cells

    def _write_cells(self, resource_id: str, cells: list[Cell]) -> None:
        _write_json(self._dir(resource_id) / "cells.json", cells)


def _is_cell(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"code", "ok"}
        and isinstance(value["code"], str)
        and isinstance(value["ok"], bool)
    )


def _write_json(path: Path, value: Any) -> None:
    """Replace ``path`` atomically, so a crash never leaves half a log."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(value, fh, ensure_ascii=False)
    os.replace(tmp, path)


def format_output(out: CellOutput, notices: list[str]) -> str:
    """Lay a cell's output out in labelled sections; empty sections are left out."""
    sections = [
        ("stdout", out.stdout.text()),
        ("stderr", out.stderr.text()),
        ("result", out.result.text()),
        ("error", out.traceback or out.error or ""),
        ("note", "\n".join(notices)),
    ]
    text = "\n".join(f"[{name}]\n{body.rstrip()}" for name, body in sections if body.strip())
    return text or "(no output)"
