"""Workspaces: resources made by plugins, one tool surface, one aggregated version.

A workspace is a list of resources (rows in the store; their state is the
plugins' business). Its version after a turn is ``ids.digest_json({name:
version})`` over the versions of all its resources, so equal states of the same
resources have equal ids, and a version can be loaded into any workspace whose
resources have the same names and types (that is what ``clone``, and so
``fork``, relies on).

Tool names: with one resource a tool keeps its own name (``run_command``); with
several, every tool is ``<resource>__<tool>`` (``db__query``). Names stay within
what model APIs accept (``^[a-zA-Z0-9_-]{1,64}$``), so resource names are
limited to letters, digits, ``_`` and ``-``.

Tool failures never raise: :meth:`WorkspaceManager.call` returns a
:class:`ToolOutcome` with ``ok=False`` and a message the model can act on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domarkx import _entrypoints, ids
from domarkx.data.models import ResourceConfig, SessionSnapshot, WorkspaceConfig
from domarkx.data.store import disk_error
from domarkx.data.versions import VersionRow
from domarkx.data.workspaces import ResourceRow
from domarkx.errors import DomarkxError, ReferenceNotFound, UsageError
from domarkx.workspace.host import PluginHost
from domarkx.workspace.plugin import (
    PLUGIN_MARKER,
    Plugin,
    Resource,
    ToolSpec,
    Unsupported,
    gathering_notes,
    resource_path,
)

DEFAULT_ENGINE = "local_shell"
ENGINE_OPTIONS = ("timeout",)
"""``session-config`` keys passed to the engine's resource with ``"engine"``; others configure the session."""
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
_TOOL_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SEPARATOR = "__"
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


class Workspace(BaseModel):
    """A workspace as stored: its id and its resources, in config order."""

    model_config = ConfigDict(extra="forbid")

    id: str
    resources: list[Resource]


class WorkspaceVersion(BaseModel):
    """An immutable workspace state: the version of each resource, by resource name."""

    model_config = ConfigDict(extra="forbid")

    id: str
    versions: dict[str, str]
    notes: list[str] = Field(default_factory=list)
    """What the plugins could not keep fully (an unreadable file), to show the user; not part of the id."""


class ToolOutcome(BaseModel):
    """The result of one tool call, for the model (``text``) and for the record (``output``)."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    resource: str | None
    ok: bool
    output: Any = None
    text: str


class PluginInfo(BaseModel):
    """One installed plugin, as ``domarkx plugins`` lists it."""

    name: str
    module: str
    description: str
    tools: list[ToolSpec]
    error: str | None = None
    usable: bool = True
    """False when it cannot be loaded here (a missing extra, a broken package): ``error`` and ``hint`` say why."""
    hint: str | None = None


class WorkspaceManager(PluginHost):
    """Creates workspaces, routes tool calls to plugins, commits and loads versions."""

    # -- configuration -------------------------------------------------------------

    def config_for(self, snapshot: SessionSnapshot) -> WorkspaceConfig:
        """The workspace a snapshot asks for.

        ``workspace-config`` if present; else a ``session-config`` ``"engine"`` is
        shorthand for one resource of that type (with the session's ``timeout``);
        else one ``local_shell``.
        """
        if snapshot.workspace_config is not None:
            return snapshot.workspace_config
        settings = snapshot.session_config
        engine = settings.get("engine", DEFAULT_ENGINE)
        if not isinstance(engine, str) or not engine:
            raise UsageError('session-config "engine" must be a plugin name', hint=_known_plugins_hint())
        options = {key: settings[key] for key in ENGINE_OPTIONS if key in settings}
        return WorkspaceConfig(resources=[ResourceConfig.model_validate({"type": engine, **options})])

    # -- lifecycle -------------------------------------------------------------------

    def create(self, config: WorkspaceConfig, *, pending: bool = False) -> Workspace:
        """Create every resource of ``config`` and commit the initial version.

        ``pending``: the workspace is made for an owner not stored yet (an
        instance); the owner's row claims it (:meth:`claim`) in the same transaction. A
        process killed before that leaves it pending, for :meth:`abandoned` to find.
        """
        return self._made(config, pending, self.commit)

    def _made(self, config: WorkspaceConfig, pending: bool, then: Callable[[Workspace], object]) -> Workspace:
        """Create the resources and rows of ``config``, then ``then`` (a commit, a load); undone if anything fails."""
        names = resource_names(config)
        with self.store.provisioning():
            resources: list[Resource] = []
            try:
                for name, item in zip(names, config.resources, strict=True):
                    with _storing(f"creating resource {name}"):
                        created = self.plugin(item.type).create_resource(item.options)
                    resources.append(created.model_copy(update={"name": name, "type": item.type}))
            except BaseException:
                for resource in resources:
                    self.plugin(resource.type).destroy_resource(resource.id)
                raise
            workspace = Workspace(id=uuid.uuid4().hex, resources=resources)
            rows = [
                ResourceRow(r.id, r.name, r.type, json.dumps(r.config, sort_keys=True), location=self._location(r))
                for r in workspace.resources
            ]
            self.store.workspaces.insert(workspace.id, config.model_dump_json(exclude_none=True), rows, pending=pending)
            try:
                then(workspace)
            except BaseException:
                self.destroy(workspace)
                raise
        return workspace

    def _location(self, resource: Resource) -> str | None:
        """Where the resource's tools work, if its plugin says (kept in its row for ``inspect``)."""
        try:
            return self.plugin(resource.type).location(resource.id)
        except Unsupported:
            return None

    def open(self, workspace_id: str) -> Workspace:
        rows = self.store.workspaces.resources(workspace_id)
        resources = [Resource(id=r.id, name=r.name, type=r.type, config=r.config) for r in rows]
        return Workspace(id=workspace_id, resources=resources)

    def clone(self, source: Workspace | WorkspaceConfig, version_id: str, *, pending: bool = False) -> Workspace:
        """A new workspace with the same resources as ``source``, loaded at ``version_id``.

        ``pending``: as in :meth:`create`. The new resources are loaded straight
        away, never committed empty first: a fork costs what writing its files costs.
        """
        config = self._config(source) if isinstance(source, Workspace) else source
        self._version(version_id)  # fail before creating anything
        return self._made(config, pending, lambda workspace: self.load(workspace, version_id))

    def close(self, workspace: Workspace) -> None:
        """Release what the plugins hold for the workspace (kernels, connections); state stays."""
        for resource in workspace.resources:
            self.plugin(resource.type).close(resource.id)

    def destroy(self, workspace: Workspace) -> None:
        """Delete the workspace and its resources' state; its versions stay loadable elsewhere.

        Marked pending first, so a process killed half-way leaves a leftover that
        :meth:`abandoned` finds, never a row whose resources are gone.
        """
        with self.store.provisioning():
            self.store.workspaces.claim(workspace.id, owned=False)
            for resource in workspace.resources:
                self.plugin(resource.type).destroy_resource(resource.id)
            self.store.workspaces.delete(workspace.id)

    def abandoned(self) -> tuple[list[Workspace], list[str]]:
        """Pending workspaces, and resource directories no row names: what killed processes left.

        Only true leftovers while the caller holds :meth:`Store.quiescent`;
        otherwise they may be another process's work in progress.
        """
        workspaces = [self.open(workspace_id) for workspace_id in self.store.workspaces.pending()]
        named = self.store.workspaces.resource_ids()
        base = self.store.home / "resources"
        stray = sorted(p.name for p in base.iterdir() if p.name not in named) if base.is_dir() else []
        return workspaces, stray

    def discard_directory(self, resource_id: str) -> None:
        """Remove a resource directory no row names, through the plugin that made it (its marker says which).

        The plugin tears down what lives outside the directory (a container, a kernel).
        """
        path = resource_path(self.store.home, resource_id)
        try:
            plugin_type: str | None = (path / PLUGIN_MARKER).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            plugin_type = None  # made by an older domarkx, or killed before it was marked
        if plugin_type in _entrypoints.names(_entrypoints.PLUGINS):
            with contextlib.suppress(DomarkxError, OSError):  # its state may be half-made
                self.plugin(plugin_type).destroy_resource(resource_id)
        if path.exists() or path.is_symlink():
            _remove_tree(path)

    # -- tools -----------------------------------------------------------------------

    def tools(self, workspace: Workspace) -> list[ToolSpec]:
        """Every tool of every resource, named for the model (see the module docstring)."""
        return [spec for spec, _resource, _tool in self._routes(workspace).values()]

    def call(self, workspace: Workspace, tool_name: str, arguments: dict[str, Any]) -> ToolOutcome:
        """Run one tool call; any failure becomes an ``ok=False`` outcome, never an exception."""
        routes = self._routes(workspace)
        route = routes.get(tool_name)
        if route is None:
            return _failed(tool_name, None, f"no tool named {tool_name!r}; available: {', '.join(routes)}")
        spec, resource, tool = route
        problem = _check_arguments(spec, arguments)
        if problem:
            return _failed(tool_name, resource.name, problem)
        plugin = self.plugin(resource.type)
        return self._guarded(tool_name, resource, lambda: plugin.execute_tool(resource.id, tool, **arguments))

    def run_code(
        self, workspace: Workspace, resource_name: str, code: str, *, stdin: bytes | None = None
    ) -> ToolOutcome:
        """Run ``code`` in the named resource as its plugin runs code (``domarkx exec``); a failure is an outcome.

        A resource that runs no code is a usage error. ``stdin``: bytes for the
        code's standard input (:meth:`Plugin.run_code`).
        """
        resource = next((r for r in workspace.resources if r.name == resource_name), None)
        if resource is None:
            names = ", ".join(r.name for r in workspace.resources)
            raise UsageError(f"no resource named {resource_name!r}", hint=f"resources: {names}")
        plugin = self.plugin(resource.type)
        if plugin.code is None:
            raise UsageError(f"resource {resource.name} ({resource.type}) runs no code", hint="pick another --resource")
        name = self.tool_name(workspace, resource, plugin.code.tool)
        return self._guarded(name, resource, lambda: plugin.run_code(resource.id, code, stdin=stdin))

    def _guarded(self, tool_name: str, resource: Resource, run: Callable[[], Any]) -> ToolOutcome:
        """Run a plugin's tool; whatever goes wrong becomes an ``ok=False`` outcome the model can read."""
        self.store.workspaces.touch(resource.id)
        try:
            output = run()
            text = render(output)
        except DomarkxError as exc:
            message = exc.message + (f" ({exc.hint})" if exc.hint else "")
            return _failed(tool_name, resource.name, message)
        except OSError as exc:  # the plugin could not keep its state: a full disk, most likely
            error = disk_error(exc, f"{resource.type} keeping its state")
            return _failed(tool_name, resource.name, error.message + (f" ({error.hint})" if error.hint else ""))
        except Exception as exc:  # a plugin bug must not end the turn; the model sees what happened
            return _failed(tool_name, resource.name, f"internal error in {resource.type}: {type(exc).__name__}: {exc}")
        return ToolOutcome(tool=tool_name, resource=resource.name, ok=True, output=output, text=text)

    @staticmethod
    def tool_name(workspace: Workspace, resource: Resource, tool: str) -> str:
        """A plugin's tool as the model calls it: its own name alone, ``<resource>__<tool>`` among several."""
        return f"{resource.name}{_SEPARATOR}{tool}" if len(workspace.resources) > 1 else tool

    def code_resource(self, workspace: Workspace, lang: str, named: str | None = None) -> Resource | None:
        """The first resource (or the ``named`` one) whose plugin runs code of fence language ``lang``.

        Asking a named resource for a language it does not run is a usage error.
        """
        wanted = lang.lower()
        for resource in workspace.resources:
            if named is not None and resource.name != named:
                continue
            code = self.plugin(resource.type).code
            if code is not None and wanted in code.languages:
                return resource
        if named is not None:
            names = ", ".join(r.name for r in workspace.resources)
            raise UsageError(f"no resource {named!r} runs {lang} code", hint=f"resources: {names}")
        return None

    def code_runner(self, workspace: Workspace, lang: str, named: str | None = None) -> tuple[str, str] | None:
        """(tool name, argument) of the call that runs a ``lang`` block (offline ``run``); None if nothing runs it."""
        resource = self.code_resource(workspace, lang, named)
        if resource is None:
            return None
        code = self.plugin(resource.type).code
        assert code is not None
        return self.tool_name(workspace, resource, code.tool), code.argument

    def _routes(self, workspace: Workspace) -> dict[str, tuple[ToolSpec, Resource, str]]:
        routes: dict[str, tuple[ToolSpec, Resource, str]] = {}
        for resource in workspace.resources:
            for spec in self.plugin(resource.type).list_tools(resource.id):
                name = self.tool_name(workspace, resource, spec.name)
                if not _TOOL_NAME_RE.fullmatch(name):
                    raise DomarkxError(f"tool name {name!r} is not valid for models (plugin {resource.type})")
                routes[name] = (spec.model_copy(update={"name": name}), resource, spec.name)
        return routes

    def host_directory(self, resource: Resource) -> Path:
        """A directory on this machine where the resource's files are, for code domarkx itself runs there.

        The plugin's :meth:`~Plugin.location` when that is a host directory, else the resource's state directory.
        """
        try:
            where = Path(self.plugin(resource.type).location(resource.id))
        except Unsupported:
            where = Path()
        return where if where.is_absolute() and where.is_dir() else resource_path(self.store.home, resource.id)

    # -- versions --------------------------------------------------------------------

    def commit(self, workspace: Workspace) -> WorkspaceVersion:
        """Commit each resource touched since the last commit or load; store the aggregate.

        Idempotent: with no change, the same version comes back.
        """
        # Shared with every committer, exclusive for `prune`: a version is recorded before it can be collected.
        with self.store.provisioning(), gathering_notes() as notes:
            rows = {r.id: r for r in self.store.workspaces.resources(workspace.id)}
            versions: dict[str, str] = {}
            committed: list[tuple[str, str]] = []
            for resource in workspace.resources:
                row = rows.get(resource.id)
                if row is None:
                    raise ReferenceNotFound(f"workspace {workspace.id} has no resource {resource.name}")
                version = row.version
                if version is None or row.touched:
                    with _storing(f"committing resource {resource.name}"):
                        version = self.plugin(resource.type).commit_version(resource.id)
                    committed.append((resource.id, version))
                versions[resource.name] = version
            recorded = self._record(workspace, versions, committed)
        return recorded.model_copy(update={"notes": notes})

    def load(self, workspace: Workspace, version_id: str) -> None:
        """Restore every resource to the state of workspace version ``version_id``."""
        stored = self._version(version_id)
        types = {r.name: r.type for r in workspace.resources}
        if types != stored.types:
            raise UsageError(
                f"workspace version {ids.short(version_id)} has resources {_describe(stored.types)},"
                f" this workspace {_describe(types)}",
                hint="a version loads only into a workspace made from the same config",
            )
        for resource in workspace.resources:
            with _storing(f"loading resource {resource.name}"):
                self.plugin(resource.type).load_version(resource.id, stored.versions[resource.name])
        self._record(workspace, stored.versions, [(r.id, stored.versions[r.name]) for r in workspace.resources])

    def current_version(self, workspace: Workspace) -> WorkspaceVersion:
        """The version last committed or loaded (uncommitted changes are not in it)."""
        current = self.store.workspaces.current_version(workspace.id)
        if current is None:
            raise DomarkxError(f"workspace {workspace.id} has no version yet", hint="commit it first")
        return WorkspaceVersion(id=current, versions=self._version(current).versions)

    def _record(
        self, workspace: Workspace, versions: dict[str, str], resource_versions: list[tuple[str, str]]
    ) -> WorkspaceVersion:
        """Store the aggregate version and make it the workspace's current one."""
        row = VersionRow(ids.digest_json(versions), versions, {r.name: r.type for r in workspace.resources})
        with self.store.write():
            self.store.versions.insert(row)
            self.store.workspaces.set_version(workspace.id, row.id, resource_versions)
        return WorkspaceVersion(id=row.id, versions=versions)

    def _config(self, workspace: Workspace) -> WorkspaceConfig:
        return WorkspaceConfig.model_validate_json(self.store.workspaces.config(workspace.id))


# -- helpers -----------------------------------------------------------------------


def resource_names(config: WorkspaceConfig) -> list[str]:
    """Config names, else the type; unnamed duplicates become ``type_2``, ``type_3``…"""
    if not config.resources:
        raise UsageError("workspace-config lists no resources", hint="add at least one, e.g. - type: local_shell")
    explicit = [item.name for item in config.resources if item.name is not None]
    for name in explicit:
        if not _NAME_RE.fullmatch(name):
            raise UsageError(
                f"invalid resource name {name!r}", hint="use up to 40 letters, digits, _ and - (no spaces)"
            )
        if explicit.count(name) > 1:
            raise UsageError(f"two resources are named {name!r}", hint="give each resource its own name")
    taken = set(explicit)
    names: list[str] = []
    for item in config.resources:
        if item.name is not None:
            names.append(item.name)
            continue
        name, n = item.type, 1
        while name in taken:
            n += 1
            name = f"{item.type}_{n}"
        if not _NAME_RE.fullmatch(name):
            raise UsageError(f"resource type {item.type!r} needs a name", hint="add name: to its config")
        taken.add(name)
        names.append(name)
    return names


def _check_arguments(spec: ToolSpec, arguments: Any) -> str | None:
    """A minimal check against the tool's JSON schema.

    Arguments must be an object with the required keys, no unknown ones, and
    the simple JSON types the schema names; anything subtler is the plugin's to check.
    """
    if not isinstance(arguments, dict):
        return f"{spec.name} takes an object of named arguments, got {type(arguments).__name__}"
    properties: dict[str, Any] = spec.parameters.get("properties", {})
    missing = [key for key in spec.parameters.get("required", []) if key not in arguments]
    if missing:
        return f"{spec.name} is missing required argument(s): {', '.join(missing)}"
    unknown = [key for key in arguments if key not in properties]
    if unknown:
        takes = ", ".join(properties) or "none"
        return f"{spec.name} got unknown argument(s): {', '.join(unknown)}; it takes {takes}"
    for key, value in arguments.items():
        expected = properties[key].get("type") if isinstance(properties[key], dict) else None
        if expected and not _json_type_ok(value, expected):
            return f"{spec.name}: argument {key!r} must be of type {expected}"
    return None


def _json_type_ok(value: Any, expected: str | list[str]) -> bool:
    for name in [expected] if isinstance(expected, str) else expected:
        types = _JSON_TYPES.get(name)
        if types is None:
            return True  # a type we do not check
        if isinstance(value, bool) and name != "boolean":
            continue
        if isinstance(value, types):
            return True
    return False


def render(output: Any) -> str:
    """A tool result as the text a model reads.

    Command results (``stdout``/``stderr``/``exit_code``) read like a terminal;
    strings as they are; anything else as JSON.
    """
    if isinstance(output, str):
        return output
    if isinstance(output, dict) and {"stdout", "stderr", "exit_code"} <= output.keys():
        return _render_command(output)
    if isinstance(output, dict) and {"columns", "rows"} <= output.keys() and output["columns"]:
        return _render_rows(output)
    return json.dumps(output, ensure_ascii=False, default=str)


_MAX_ALIGN = 60


def _render_rows(result: dict[str, Any]) -> str:
    """Query results as an aligned text table, which models and people both read well."""
    header = [str(c) for c in result["columns"]]
    rows = [["NULL" if v is None else str(v) for v in row] for row in result["rows"]]
    # Align short columns only: padding a column to a long text's width would double a flood of output.
    widths = [min(max(len(r[i]) for r in [header, *rows]), _MAX_ALIGN) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    count = len(rows)
    more = " (truncated)" if result.get("truncated") else ""
    lines.append(f"({count} row{'s' if count != 1 else ''}{more})")
    return "\n".join(lines) + "\n"


def _render_command(result: dict[str, Any]) -> str:
    parts = [str(result["stdout"] or "")]
    if result["stderr"]:
        parts.append(f"[stderr]\n{result['stderr']}")
    if result.get("timed_out"):
        parts.append("[timed out: the command was killed]")
    elif result["exit_code"] != 0:
        parts.append(f"[exit code {result['exit_code']}]")
    text = "\n".join(p.rstrip("\n") for p in parts if p).strip("\n")
    return text + "\n" if text else "[no output, exit code 0]\n"


@contextlib.contextmanager
def _storing(doing: str) -> Iterator[None]:
    """A plugin's OS error while it writes state (a full disk) as a one-line store error."""
    try:
        yield
    except OSError as exc:
        raise disk_error(exc, doing) from exc


def _remove_tree(path: Path) -> None:
    """Delete a directory tree even where a command made directories read-only."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    for top, dirs, _files in os.walk(path):
        os.chmod(top, 0o700)
        for name in dirs:
            child = os.path.join(top, name)
            if not os.path.islink(child):  # never chmod through a link to outside
                os.chmod(child, 0o700)
    shutil.rmtree(path)


def _failed(tool: str, resource: str | None, message: str) -> ToolOutcome:
    return ToolOutcome(tool=tool, resource=resource, ok=False, output=None, text=f"error: {message}")


def _describe(types: dict[str, str]) -> str:
    return ", ".join(f"{name} ({kind})" for name, kind in sorted(types.items())) or "none"


def _known_plugins_hint() -> str:
    return f"installed plugins: {', '.join(_entrypoints.names(_entrypoints.PLUGINS)) or 'none'}"


def installed_plugins() -> list[PluginInfo]:
    """Every plugin registered under ``domarkx.plugins``, with the tools it describes."""
    from importlib.metadata import entry_points

    found: list[PluginInfo] = []
    for name in _entrypoints.names(_entrypoints.PLUGINS):
        module = next((ep.value for ep in entry_points(group=_entrypoints.PLUGINS, name=name)), "")
        try:
            cls = _entrypoints.load(_entrypoints.PLUGINS, name, what="plugin")
            doc = (cls.__doc__ or "").strip().splitlines()
            tools = cls.describe_tools() if isinstance(cls, type) and issubclass(cls, Plugin) else []
        except DomarkxError as exc:
            unusable = PluginInfo(name=name, module=module, description="", tools=[], usable=False)
            found.append(unusable.model_copy(update={"error": exc.message, "hint": exc.hint}))
            continue
        found.append(PluginInfo(name=name, module=module, description=doc[0] if doc else "", tools=tools))
    return found
