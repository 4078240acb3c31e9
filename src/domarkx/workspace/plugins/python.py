"""The ``python`` resource: a confined Jupyter kernel whose versions are its whole working context.

A version is the kernel's work directory (git, as ``local_shell`` keeps files)
plus its user namespace (pickled inside the kernel, a group of variables per
blob; see :mod:`._pycheckpoint`). ``load_version`` brings both back without
re-running cells — values from the clock or unseeded randomness included —
except the few objects that cannot be pickled (an open socket, a generator),
which it recomputes by re-running only the cells they depend on, and says so.

A kernel lives as long as the ``domarkx`` process that started it and stays
up across turns in that process; a later process restores it from the last
version on its first call, then replays the cells run after that version (kept
in ``cells.json``, so an uncommitted cell is not lost with its process). Plain
replay is also how a version made before checkpoints existed (a list of cells)
is loaded.

On disk, under ``context.resource_dir(id)``::

    state.json   config, the version, its files commit and tree
    cells.json   cells run since that version: [{"code": …, "ok": true}, …]
    index        the git index of work/
    work/        the kernel's working directory (/workspace inside the sandbox)
    home/        HOME of an unconfined kernel
    inbox/ outbox/  files handed to and from the kernel
    kernel.log   the kernel's own stdout/stderr
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Collection, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domarkx import ids, paths
from domarkx.errors import DomarkxError, StoreError, UsageError
from domarkx.tools.kernel import CellOutput, Kernel, KernelDied, confinement_available
from domarkx.tools.schema import parameters_schema
from domarkx.workspace.plugin import (
    CodeRunner,
    Entry,
    Layer,
    Plugin,
    Resource,
    ResourceDiff,
    ToolError,
    ToolSpec,
    Unsupported,
    emit_output,
    note,
    report_progress,
    resource_path,
)
from domarkx.workspace.plugins import _hostcopy
from domarkx.workspace.plugins import _pycheckpoint as ckpt
from domarkx.workspace.plugins._gitstore import GitStore, Snapshot, dirs_from_text, dirs_to_text, unreadable_note
from domarkx.workspace.plugins._state import parse_config, read_state, write_state

_KERNELS: dict[Path, Kernel] = {}
"""Kernels this process runs, by resource directory: a cache, never the source of truth."""
_LOUD_RESTORE = 32 << 20
"""Bytes of pickles above which a restore says what it does (it will take about a second or more)."""

Cell = dict[str, Any]


class PythonConfig(BaseModel):
    """The ``workspace-config`` options of a ``python`` resource."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    timeout: float = Field(60.0, gt=0, le=86_400)
    """Seconds a cell may run: the default for a call and the most a call may ask for."""
    max_output: int = Field(20_000, ge=200)
    """Characters of output a call returns per stream; the middle of longer output is cut."""
    sandbox: Literal["auto", "bwrap", "none"] = "auto"
    """``auto``: confine the kernel with bubblewrap where it works, else run it unconfined with a warning."""


class PythonState(BaseModel):
    config: PythonConfig
    version: str = ""
    files: str = ""
    """The git commit of ``work/`` at ``version``."""
    tree: str = ""
    empty_dirs: list[str] = Field(default_factory=list)
    dirty: bool = False
    """The work tree may differ from the index (a kernel ran since the last commit or load)."""
    notes: list[str] = Field(default_factory=list)
    """What the last restore recomputed or could not bring back, shown with the next call's output."""


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
    """Resources that are confined IPython kernels, versioned by checkpoints of files and variables."""

    code = CodeRunner(tool="execute_python", argument="code", languages=frozenset({"python", "py", "python3"}))
    plugin_version = "2"
    config_model = PythonConfig

    @property
    def type(self) -> str:
        return "python"

    @cached_property
    def _git(self) -> GitStore:
        return GitStore(self.context.plugin_dir(self.type) / "objects.git")

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
        return format_output(*self._cell(resource_id, code, timeout))

    def run_code(self, resource_id: str, code: str, *, stdin: bytes | None = None) -> dict[str, Any]:
        """``domarkx exec``: the cell as a command's result, so output streams apart and an exception exits 1."""
        if stdin is not None:
            raise Unsupported("python resources take no standard input")
        out, notices = self._cell(resource_id, code, None)
        stdout = "".join(_line(text) for text in (out.stdout.text(), out.result.text()))
        notes = [f"note: {n}" for n in notices]
        stderr = "".join(_line(text) for text in (out.stderr.text(), out.traceback or out.error or "", *notes))
        exit_code = None if out.timed_out else int(out.error is not None)
        return {"stdout": stdout, "stderr": stderr, "exit_code": exit_code, "timed_out": out.timed_out}

    def _cell(self, resource_id: str, code: str, timeout: float | None) -> tuple[CellOutput, list[str]]:
        config = self._config(resource_id)
        limit = config.timeout if timeout is None else min(timeout, config.timeout)
        kernel = self.kernel(resource_id)
        notices = self._take_notes(resource_id)
        self._mark_dirty(resource_id)
        try:
            out = kernel.execute(code, timeout=limit, limit=config.max_output, on_output=emit_output)
        except KernelDied as exc:
            _KERNELS.pop(self._dir(resource_id), None)
            raise ToolError(
                f"the Python kernel died while running the cell ({exc.message}); the next call starts a new "
                "kernel from the last version and replays the cells run since"
            ) from exc
        if out.timed_out:
            notices.append(
                f"{TIMED_OUT_NOTE} {limit:g} s and was interrupted; it is not kept in the history, "
                "so its partial effects are not replayed"
            )
        else:
            self._write_cells(resource_id, [*self._cells(resource_id), {"code": code, "ok": out.error is None}])
        return out, notices

    def failure(self, output: Any) -> str | None:
        """The exception a cell ended with (its name, from :func:`format_output`'s ``[error]`` section).

        A cell that itself prints a line ``[error]`` is taken for a failed one.
        """
        return cell_failure(output) if isinstance(output, str) else None

    def kernel(self, resource_id: str) -> Kernel:
        """The resource's running kernel, restored from its version if this process has none (tool executors)."""
        folder = self._dir(resource_id)
        kernel = _KERNELS.get(folder)
        if kernel is not None and kernel.is_alive():
            return kernel
        state = self._state(resource_id)
        confined = {"auto": None, "bwrap": True, "none": False}[state.config.sandbox]
        kernel = Kernel.start(cwd=folder / "work", home=folder / "home", state_dir=folder, confined=confined)
        _KERNELS[folder] = kernel
        try:
            notes = self._restore(resource_id, kernel, state)
        except BaseException:
            self.close(resource_id)
            raise
        if notes:
            for note in notes:
                report_progress(f"python: {note}")
            self._write_state(resource_id, notes=[*state.notes, *notes])
        return kernel

    # -- versions ------------------------------------------------------------------

    def get_version(self, resource_id: str) -> str:
        return self._state(resource_id).version

    def commit_version(self, resource_id: str) -> str:
        state = self._state(resource_id)
        files, snapshot = self._commit_files(resource_id, state)
        kernel = self._live(resource_id)
        if kernel is None and self._cells(resource_id):
            kernel = self.kernel(resource_id)  # the cells live only in a kernel: bring it back to capture them
        parent = self._manifest(state.version) if state.version else None
        if kernel is None:
            pieces, history = (parent.pieces, parent.history) if parent else ([], "")
        else:
            pieces, cells = ckpt.capture(kernel, parent, self.context.store, state.config.timeout)
            history = ckpt.store_history(self.context.store, parent.history if parent else "", cells)
        manifest = ckpt.Manifest(files=files, history=history, pieces=pieces)
        version = self._store_manifest(manifest)
        if kernel is not None:
            ckpt.call(kernel, "committed", state.config.timeout, pieces=[[p.names, p.blob] for p in pieces])
        self._write_state(resource_id, version=version, files=files, tree=snapshot.tree,
                          empty_dirs=dirs_to_text(snapshot.empty_dirs), dirty=False)  # fmt: skip
        self._write_cells(resource_id, [])
        return version

    def _commit_files(self, resource_id: str, state: PythonState) -> tuple[str, Snapshot]:
        folder = self._dir(resource_id)
        snapshot, unreadable = self._git.stage(folder / "work", folder / "index")
        if unreadable:
            note(unreadable_note(self.type, unreadable))
        if state.files and state.tree == snapshot.tree and dirs_from_text(state.empty_dirs) == snapshot.empty_dirs:
            return state.files, snapshot
        return self._git.commit(snapshot, state.files or None), snapshot

    def _store_manifest(self, manifest: ckpt.Manifest) -> str:
        store = self.context.store
        with store.write():
            version = store.put_blob(ids.canonical_json(manifest.model_dump()))
            store.add_refs(f"plugin:{self.type}", [version, *ckpt.blobs_of(manifest, store)])
        return version

    def load_version(self, resource_id: str, version_id: str) -> None:
        target = ckpt.read_manifest(self.context.store, version_id)
        self.close(resource_id)
        state = self._state(resource_id)
        if isinstance(target, list):  # made before checkpoints: the cells to replay, no files
            self._write_cells(resource_id, target)
            self._write_state(resource_id, version=version_id, notes=[])
            self.kernel(resource_id)
            return
        self._load_files(resource_id, state, target.files)
        self._write_cells(resource_id, [])
        self._write_state(resource_id, version=version_id, notes=[])
        self.kernel(resource_id)

    def _load_files(self, resource_id: str, state: PythonState, commit: str) -> None:
        """Check the files out like ``local_shell`` does, touching only what differs."""
        folder = self._dir(resource_id)
        work, index = folder / "work", folder / "index"
        target = self._git.read(commit)
        stale: list[bytes] = []
        current_empty = dirs_from_text(state.empty_dirs)
        if state.dirty or not state.tree:
            stale, current_empty = self._git.discard_untracked(work, index), ()
        else:
            self._mark_dirty(resource_id)  # until the switch completes, the tree is in between
        self._git.switch(work, index, current_empty, target, stale)
        self._write_state(
            resource_id, files=commit, tree=target.tree, empty_dirs=dirs_to_text(target.empty_dirs), dirty=False
        )

    def missing_versions(self, version_ids: Collection[str]) -> set[str]:
        missing: set[str] = set()
        commits: dict[str, str] = {}
        store = self.context.store
        for version in version_ids:
            try:
                manifest = ckpt.read_manifest(store, version)
                if isinstance(manifest, ckpt.Manifest):
                    commits[version] = manifest.files
                    if not all(store.blob_path(b).exists() for b in ckpt.blobs_of(manifest, store)):
                        missing.add(version)
            except (StoreError, UsageError):
                missing.add(version)
        lost = self._git.missing(set(commits.values()))
        return missing | {v for v, c in commits.items() if c in lost}

    # -- live files and versions without loading them ------------------------------

    def location(self, resource_id: str) -> str:
        return str(self._dir(resource_id) / "work")

    def copy_out(self, resource_id: str, path: bytes, dest: Path) -> None:
        """The kernel wrote the work dir, so it is copied as ``local_shell``'s is: links as links, no FIFO."""
        try:
            _hostcopy.copy_out(self._dir(resource_id) / "work", path, dest)
        except OSError as exc:
            raise UsageError(f"cannot copy {paths.escape(path)} out: {exc.strerror or exc}") from exc

    def copy_in(self, resource_id: str, source: Path, path: bytes) -> None:
        self._mark_dirty(resource_id)  # the next load must not trust the index
        try:
            _hostcopy.copy_in(self._dir(resource_id) / "work", source, path)
        except OSError as exc:
            raise UsageError(f"cannot copy {source} in: {exc.strerror or exc}") from exc

    def list_version(self, version_id: str, path: bytes = b"") -> list[Entry]:
        return ckpt.list_files(self._git, self._files_of(version_id), path)

    def read_version(self, version_id: str, path: bytes) -> bytes:
        return ckpt.read_file(self._git, self._files_of(version_id), path)

    def diff_versions(self, old: str, new: str) -> ResourceDiff:
        """Files as for any browsable plugin, then variables added, removed or changed (reprs the kernel made)."""
        files = super().diff_versions(old, new)
        before, after = self._manifest(old), self._manifest(new)
        changes = ckpt.variable_changes(before, after) if before and after else []
        notes = [] if before and after else ["variables are not compared with a version made before checkpoints"]
        return ResourceDiff(changes=[*files.changes, *changes], notes=[*files.notes, *notes])

    def _files_of(self, version_id: str) -> str:
        manifest = self._manifest(version_id)
        if manifest is None:
            raise Unsupported("a python version made before checkpoints has no files to browse")
        return manifest.files

    # -- versions elsewhere ----------------------------------------------------------

    def export_versions(self, version_ids: Sequence[str], into: Path, *, have: Collection[str] = ()) -> list[Layer]:
        return ckpt.export(self._git, self.context.store, version_ids, into, have)

    def import_versions(self, layers: Sequence[Layer]) -> None:
        ckpt.import_layers(self._git, self.context.store, layers, f"plugin:{self.type}")

    def collect(self, live: Collection[str]) -> int:
        """Keep only what live versions need: their checkpoint blobs, and their files' git objects.

        The blobs are let go of here and deleted (and counted) by the store's
        prune; the git objects go at once, as ``local_shell``'s do, except those
        a resource's index holds (files staged by a commit still under way).
        Returns the bytes the git store freed.
        """
        store = self.context.store
        keep, commits = ckpt.needed(store, [v for v in live if v not in self.missing_versions([v])])
        with store.write():
            store.drop_refs(f"plugin:{self.type}")
            store.add_refs(f"plugin:{self.type}", keep)
        resources = self.context.home / "resources"
        indexes = sorted(resources.glob(f"{self.type}-*/index")) if resources.is_dir() else []
        return self._git.collect(commits, indexes)

    # -- restore -------------------------------------------------------------------

    def _restore(self, resource_id: str, kernel: Kernel, state: PythonState) -> list[str]:
        """Bring a fresh kernel to ``state.version`` plus the cells run since; return what to tell the user."""
        notes: list[str] = []
        target = ckpt.read_manifest(self.context.store, state.version) if state.version else None
        if isinstance(target, ckpt.Manifest) and target.pieces:
            size = sum(p.size for p in target.pieces)
            count = sum(len(p.names) for p in target.pieces)
            if size >= _LOUD_RESTORE or any(not p.blob for p in target.pieces):
                report_progress(f"restoring python kernel: {count} variables, {_megabytes(size)}")
            notes += ckpt.restore(kernel, target, self.context.store, state.config.timeout)
        return notes + self._replay(resource_id, kernel, state.config)

    def _replay(self, resource_id: str, kernel: Kernel, config: PythonConfig) -> list[str]:
        """Run the cells logged since the version again: the fallback for what no checkpoint holds.

        Those are cells of a process that ended before committing, or all the
        cells of a version made before checkpoints existed.
        """
        problems: list[str] = []
        cells = self._cells(resource_id)
        for number, cell in enumerate(cells, start=1):
            try:
                out = kernel.execute(cell["code"], timeout=config.timeout)
            except KernelDied as exc:
                raise DomarkxError(f"replaying python cell {number} killed the kernel ({exc.message})") from exc
            if out.timed_out:
                problems.append(f"cell {number} timed out on replay")
            elif (out.error is None) != cell["ok"]:
                problems.append(f"cell {number} gave {out.error or 'no error'} on replay, unlike its first run")
        if cells:
            many = len(cells) != 1
            problems.insert(
                0, f"{len(cells)} cell{'s' * many} run since the last version {'were' if many else 'was'} replayed"
            )
        return problems

    # -- state on disk -------------------------------------------------------------

    def _dir(self, resource_id: str) -> Path:
        return resource_path(self.context.home, resource_id)

    def _live(self, resource_id: str) -> Kernel | None:
        kernel = _KERNELS.get(self._dir(resource_id))
        return kernel if kernel is not None and kernel.is_alive() else None

    def _manifest(self, version: str) -> ckpt.Manifest | None:
        found = ckpt.read_manifest(self.context.store, version)
        return found if isinstance(found, ckpt.Manifest) else None

    def _state(self, resource_id: str) -> PythonState:
        return read_state(self._dir(resource_id), PythonState)

    def _config(self, resource_id: str) -> PythonConfig:
        return self._state(resource_id).config

    def _write_state(self, resource_id: str, **changes: Any) -> None:
        state = self._state(resource_id)
        write_state(self._dir(resource_id), state.model_copy(update=changes))

    def _mark_dirty(self, resource_id: str) -> None:
        if not self._state(resource_id).dirty:
            self._write_state(resource_id, dirty=True)

    def _take_notes(self, resource_id: str) -> list[str]:
        notes = self._state(resource_id).notes
        if notes:
            self._write_state(resource_id, notes=[])
        return list(notes)

    def _cells(self, resource_id: str) -> list[Cell]:
        self._state(resource_id)  # a clear error for a destroyed resource
        cells: list[Cell] = json.loads((self._dir(resource_id) / "cells.json").read_text())
        return cells

    def _write_cells(self, resource_id: str, cells: list[Cell]) -> None:
        _write_json(self._dir(resource_id) / "cells.json", cells)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def _write_json(path: Path, value: Any) -> None:
    """Replace ``path`` atomically, so a crash never leaves half a log."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(value, fh, ensure_ascii=False)
    os.replace(tmp, path)


def _line(text: str) -> str:
    """``text`` ending with a newline (none if empty), so streams pieced together stay on their lines."""
    return text if not text or text.endswith("\n") else text + "\n"


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


TIMED_OUT_NOTE = "the cell timed out after"


def cell_failure(text: str) -> str | None:
    """``timed out``, the exception's name, or None for a cell that ended well (read from its formatted output)."""
    _head, has_note, note = ("\n" + text).rpartition("\n[note]\n")
    if has_note and TIMED_OUT_NOTE in note:
        return "timed out"
    _head, has_error, error = ("\n" + text).rpartition("\n[error]\n")
    if not has_error:
        return None
    lines = [line.strip() for line in error.partition("\n[note]\n")[0].splitlines() if line.strip()]
    name = re.match(r"[A-Za-z_][\w.]*(?=:|$)", lines[-1]) if lines else None
    return name.group() if name else "error"
