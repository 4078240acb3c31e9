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
from collections.abc import Callable, Collection, Sequence
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

from domarkx import ids, paths
from domarkx.errors import StoreError, UsageError
from domarkx.tools.portable import files, shell
from domarkx.workspace.diff import text_change
from domarkx.workspace.plugin import (
    Change,
    CodeRunner,
    Entry,
    Layer,
    Plugin,
    ResourceDiff,
    ToolError,
    emit_output,
    note,
    resource_path,
)
from domarkx.workspace.plugins import _hostcopy, _sandbox
from domarkx.workspace.plugins._gitstore import (
    Changed,
    GitStore,
    IndexDamaged,
    Snapshot,
    TreeEntry,
    dirs_from_text,
    dirs_to_text,
    remove_path,
    unreadable_note,
)
from domarkx.workspace.plugins._state import LazyModel, parse_config, read_state, write_state

if TYPE_CHECKING:
    from domarkx.workspace.plugin import Resource, ToolSpec
    from domarkx.workspace.plugins._local_shell_models import LocalShellConfig, LocalShellState

TYPE = "local_shell"
T = TypeVar("T")
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
"""Git's id of the empty tree: a resource at it (and not dirty) has an empty work tree."""
PACK_MEDIA_TYPE = "application/vnd.domarkx.local-shell.pack.v1"
VERSIONS_ANNOTATION = "io.domarkx.versions"
"""On a pack layer: the versions (space-separated commit ids) it brings, with what came before it."""
LINK, EXECUTABLE, SUBMODULE, ABSENT = "120000", "100755", "160000", "000000"
"""Git tree modes: symlink, executable file, nested repository, and "not on this side" in a diff."""


class LocalShellPlugin(Plugin):
    """A private working directory with a shell, versioned with git, confined with bubblewrap."""

    code = CodeRunner(
        tool="run_command", argument="command", languages=frozenset({"sh", "shell", "bash", "zsh", "console"})
    )
    config_model = LazyModel("domarkx.workspace.plugins._local_shell_models:LocalShellConfig")

    @property
    def type(self) -> str:
        return TYPE

    @classmethod
    def describe_tools(cls) -> list[ToolSpec]:
        from domarkx.workspace.plugins._local_shell_models import TOOLS

        return list(TOOLS)

    @classmethod
    def powers(cls, options: dict[str, Any]) -> list[str]:
        return ["sandbox: none runs its commands unconfined, as you"] if options.get("sandbox") == "none" else []

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
        from domarkx.workspace.plugin import Resource
        from domarkx.workspace.plugins._local_shell_models import LocalShellConfig, LocalShellState

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
            write_state(base, LocalShellState(config=options))
            self.commit_version(resource_id)
        except BaseException:  # a full disk, say: leave nothing behind that no row names
            remove_path(base)
            raise
        return Resource(id=resource_id, name=TYPE, type=TYPE, config=options.model_dump(mode="json"))

    def destroy_resource(self, resource_id: str) -> None:
        remove_path(self._dir(resource_id))

    # -- versions --------------------------------------------------------------------

    def get_version(self, resource_id: str) -> str:
        state = _read_state(self._dir(resource_id))
        if state.version is None:
            raise UsageError(f"resource {resource_id} has no version yet")
        return state.version

    def commit_version(self, resource_id: str) -> str:
        return self._index_repaired(resource_id, self._commit)

    def _index_repaired(self, resource_id: str, action: Callable[[str], T]) -> T:
        """Run ``action``; if the resource's git index turns out damaged, rebuild it from the last version and retry."""
        try:
            return action(resource_id)
        except IndexDamaged:
            base = self._dir(resource_id)
            state = _read_state(base)
            work, index = self._paths(resource_id)
            self._git.rebuild_index(work, index, state.tree or EMPTY_TREE)
            self._mark_dirty(base, state)  # the index no longer vouches for the work tree
            return action(resource_id)

    def _commit(self, resource_id: str) -> str:
        base = self._dir(resource_id)
        state = _read_state(base)
        work, index = self._paths(resource_id)
        snapshot, unreadable = self._git.stage(work, index)
        if unreadable:
            note(unreadable_note(TYPE, unreadable))
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
        self._index_repaired(resource_id, lambda rid: self._load(rid, version_id))

    def _load(self, resource_id: str, version_id: str) -> None:
        base = self._dir(resource_id)
        state = _read_state(base)
        work, index = self._paths(resource_id)
        target = self._git.read(version_id)
        fresh = not state.dirty and state.tree == EMPTY_TREE and not state.empty_dirs
        stale: list[bytes] = []
        current_empty = _empty_dirs(state)
        if state.dirty:
            stale, current_empty = self._git.discard_untracked(work, index), ()
        else:
            self._mark_dirty(base, state)  # until the switch completes, the tree is in between
        if fresh:  # nothing to compare against (a new resource, e.g. a fork): write every file once
            self._git.fill(work, index, target)
        else:
            self._git.switch(work, index, current_empty, target, stale)
        self._record(base, state, version_id, target)

    @staticmethod
    def _record(base: Path, state: LocalShellState, commit: str, snapshot: Snapshot) -> None:
        state.version, state.tree = commit, snapshot.tree
        state.empty_dirs = dirs_to_text(snapshot.empty_dirs)
        state.dirty = False
        write_state(base, state)

    @staticmethod
    def _mark_dirty(base: Path, state: LocalShellState) -> None:
        if not state.dirty:
            state.dirty = True
            write_state(base, state)

    # -- live files ----------------------------------------------------------------------

    def copy_out(self, resource_id: str, path: bytes, dest: Path) -> None:
        try:
            _hostcopy.copy_out(self.work_dir(resource_id), path, dest)
        except OSError as exc:
            raise UsageError(f"cannot copy {paths.escape(path)} out: {exc.strerror or exc}") from exc

    def copy_in(self, resource_id: str, source: Path, path: bytes) -> None:
        base = self._dir(resource_id)
        self._mark_dirty(base, _read_state(base))  # the next load must not trust the index
        try:
            _hostcopy.copy_in(self.work_dir(resource_id), source, path)
        except OSError as exc:
            raise UsageError(f"cannot copy {source} in: {exc.strerror or exc}") from exc

    # -- versions without loading them --------------------------------------------------

    def list_version(self, version_id: str, path: bytes = b"") -> list[Entry]:
        """Git's tree at ``path``, plus the directories only the version's empty-dirs list knows."""
        folder = _hostcopy.relative(path)
        prefix = folder + b"/" if folder else b""
        empty = self._git.read(version_id).empty_dirs
        only_listed = {d[len(prefix) :].split(b"/", 1)[0] for d in empty if d.startswith(prefix) and d != prefix}
        entries = self._git.list_tree(version_id, folder)
        if entries is None:  # not in git's tree: a directory that holds only empty directories, or nothing
            if not only_listed and folder not in empty:
                raise UsageError(f"no directory {paths.escape(folder)} in local_shell version {version_id}")
            entries = []
        targets = self._git.blobs(e.object_id for e in entries if e.mode == LINK)
        found = [_entry(e, targets) for e in entries]
        found += [Entry(name=name, kind="dir") for name in only_listed - {e.name for e in found}]
        return sorted(found, key=lambda e: e.name)

    def read_version(self, version_id: str, path: bytes) -> bytes:
        return self._git.read_blob(version_id, _hostcopy.relative(path))

    def diff_versions(self, old: str, new: str) -> ResourceDiff:
        """Git's tree diff: the cost follows what changed, not the size of the work tree."""
        found = self._git.compare(old, new)
        changes = [_file_change(c, found.blobs) for c in found.changes]
        before, after = found.before, found.after
        old_dirs, new_dirs = set(before.empty_dirs), set(after.empty_dirs)
        changes += [Change(kind="dir", name=paths.escape(d), status="added") for d in new_dirs - old_dirs]
        changes += [Change(kind="dir", name=paths.escape(d), status="removed") for d in old_dirs - new_dirs]
        return ResourceDiff(changes=sorted(changes, key=lambda c: paths.unescape(c.name)))

    # -- versions elsewhere -------------------------------------------------------------

    def export_versions(self, version_ids: Sequence[str], into: Path, *, have: Collection[str] = ()) -> list[Layer]:
        """One git pack of every object the versions need that ``have`` lacks (none: no layer)."""
        pack = into / f".local_shell-{uuid.uuid4().hex}.pack"
        try:
            if not self._git.pack(version_ids, have, pack):
                return []
            data = pack.read_bytes()
            digest = ids.digest_bytes(data)
            named = into / f"local_shell-{ids.short(digest, 64)}.pack"
            pack.replace(named)
        finally:
            pack.unlink(missing_ok=True)
        versions = " ".join(sorted(set(version_ids)))
        return [Layer(PACK_MEDIA_TYPE, named, digest, len(data), {VERSIONS_ANNOTATION: versions})]

    def import_versions(self, layers: Sequence[Layer]) -> None:
        for layer in layers:
            if layer.media_type != PACK_MEDIA_TYPE:
                raise StoreError(f"local_shell cannot read a layer of type {layer.media_type}")
            claimed = layer.annotations.get(VERSIONS_ANNOTATION, "").split()
            if not claimed:
                raise StoreError("a local_shell layer does not say which versions it holds")
            if self._git.missing(claimed):
                self._git.unpack(layer.path, claimed)

    def collect(self, live: Collection[str]) -> int:
        """Git objects no live version needs, nor any resource's index (work not yet committed)."""
        resources = self.context.home / "resources"
        indexes = sorted(resources.glob(f"{TYPE}-*/index")) if resources.is_dir() else []
        return self._git.collect(live, indexes)

    # -- tools -----------------------------------------------------------------------

    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        return self.describe_tools()

    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        return self._call(resource_id, tool_name, kwargs)

    def run_code(self, resource_id: str, code: str, *, stdin: bytes | None = None) -> Any:
        """``domarkx exec``: the command run as ``run_command`` runs it (sandbox, time-out, caps), fed ``stdin``."""
        return self._call(resource_id, "run_command", {"command": code}, stdin=stdin)

    def _call(self, resource_id: str, tool_name: str, kwargs: dict[str, Any], *, stdin: bytes | None = None) -> Any:
        """Run a tool; ``stdin`` reaches ``run_command`` only from :meth:`run_code`, never from a model."""
        state = _read_state(self._dir(resource_id))
        work = self.work_dir(resource_id)
        handlers: dict[str, Callable[..., Any]] = {
            "run_command": lambda command, timeout=None: self._run_command(work, state.config, command, timeout, stdin),
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
            result = handler(**kwargs)
        except files.OutsideRootError as exc:
            raise ToolError(f"refused: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise ToolError(f"{tool_name}: {exc}") from exc
        except OSError as exc:
            raise ToolError(f"{tool_name}: {_describe_os_error(exc, kwargs.get('path'))}") from exc
        if tool_name in _CHANGING_TOOLS and state.config.max_size is not None:
            self._keep_within(resource_id, state.config.max_size, tool_name, result)
        return result

    def _keep_within(self, resource_id: str, limit: int, tool_name: str, result: Any) -> None:
        """Undo the changes since the last commit if they left the work tree over ``max_size``."""
        if _sandbox.tree_size(self.work_dir(resource_id), limit) <= limit:
            return
        self.load_version(resource_id, self.get_version(resource_id))
        raise ToolError(
            f"{tool_name}: the workspace grew past its max_size of {limit} bytes, so the changes since "
            f"the last commit were undone{_sandbox.brief(result)}",
            hint="write less, or remove files in the same command that makes them",
        )

    def _run_command(
        self, work: Path, config: LocalShellConfig, command: str, timeout: Any, stdin: bytes | None
    ) -> dict[str, Any]:
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
            raise ToolError("run_command: timeout must be a number of seconds")
        seconds = config.timeout if timeout is None else min(float(timeout), config.max_timeout)
        if not seconds > 0:  # also NaN, which would never time out
            raise ToolError("run_command: timeout must be a positive number of seconds")
        wrapper, env = _sandbox.confinement(work, config.sandbox, max_file=config.max_size)
        return shell.run_command(
            command,
            cwd=str(work),
            timeout=seconds,
            max_output=config.max_output,
            env=env,
            wrapper=wrapper,
            on_output=emit_output,
            input=stdin,
        )


_CHANGING_TOOLS = frozenset({"run_command", "write_file", "edit_file"})


def _entry(entry: TreeEntry, targets: dict[str, bytes]) -> Entry:
    if entry.kind == "tree":
        return Entry(name=entry.name, kind="dir")
    if entry.mode == LINK:
        return Entry(name=entry.name, kind="link", size=entry.size, target=targets.get(entry.object_id, b""))
    if entry.kind != "blob":
        return Entry(name=entry.name, kind="other")
    return Entry(name=entry.name, kind="file", size=entry.size, executable=entry.mode == EXECUTABLE)


def _file_change(change: Changed, contents: dict[str, bytes]) -> Change:
    """One path's change, shown like the generic walker shows it (a link as ``symlink -> target``)."""

    def side(mode: str, object_id: str) -> bytes | None:
        if mode == ABSENT:
            return None
        if mode == SUBMODULE:
            return b""
        data = contents.get(object_id, b"")
        return b"symlink -> " + data if mode == LINK else data

    old, new = side(change.old_mode, change.old_id), side(change.new_mode, change.new_id)
    if old == new:  # only the executable bit
        return Change(
            kind="file",
            name=paths.escape(change.path),
            status="modified",
            detail=f"mode {change.old_mode} → {change.new_mode}",
        )
    return text_change(change.path, old, new)


def _read_state(base: Path) -> LocalShellState:
    """A resource's state file, read with its model (and so pydantic) imported here: a diff never reads it."""
    from domarkx.workspace.plugins._local_shell_models import LocalShellState

    return read_state(base, LocalShellState)


def _same(state: LocalShellState, snapshot: Snapshot) -> bool:
    return state.tree == snapshot.tree and _empty_dirs(state) == snapshot.empty_dirs


def _empty_dirs(state: LocalShellState) -> tuple[bytes, ...]:
    return dirs_from_text(state.empty_dirs)


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
