"""Changing an instance's workspace by hand: ``domarkx exec`` and ``domarkx cp`` (like ``docker exec``/``cp``).

Each is committed at once; a change is recorded as an event (:mod:`domarkx.data.events`):
the head moves to the new version, ``log`` shows what moved it, and ``fork`` at
that point of the conversation starts from it. What changed nothing (``exec --
ls``, copying out) leaves no trace. See docs/sessions.md, "Out-of-band changes".
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domarkx import paths
from domarkx.errors import DomarkxError, PathEscapeError, UsageError
from domarkx.workspace.plugin import Plugin, Unsupported

if TYPE_CHECKING:
    from domarkx.data.events import EventRow
    from domarkx.data.models import SessionInstance
    from domarkx.session.instance import InstanceManager
    from domarkx.workspace.manager import ToolOutcome, Workspace, WorkspaceManager, WorkspaceVersion
    from domarkx.workspace.plugin import Resource

COMMAND_LANG = "sh"
"""What ``domarkx exec -- CMD…`` is written in when no ``--resource`` is named: it runs where shell code runs."""


@dataclass(frozen=True)
class Executed:
    """What ``exec`` did: the outcome, the event that recorded it, and what the commit could not keep."""

    outcome: ToolOutcome
    version: str
    """The workspace version after it: the instance's head."""
    event: EventRow | None
    """The record of the change; None when nothing changed (a read-only command leaves no trace)."""
    notes: list[str]


def exec_code(
    manager: InstanceManager,
    ref: str,
    code: str | Sequence[str],
    *,
    resource: str | None = None,
    stdin: bytes | None = None,
) -> Executed:
    """Run ``code`` in a resource of the instance (its shell by default), commit, and record it.

    ``code`` as words (``exec -- ls -la``) is a command line quoted for a shell, or
    the words joined by spaces for another resource's code (``SELECT 1``).
    """
    with manager.using(manager.get(ref)) as instance:
        _refuse_stopped(instance.status)
        workspace = manager.workspaces.open(instance.workspace_id)
        target = code_target(manager.workspaces, workspace, resource)
        plugin = manager.workspaces.plugin(target.type)
        if not isinstance(code, str):
            code = shlex.join(code) if is_shell(manager.workspaces, target) else " ".join(code)
        if stdin is not None and type(plugin).run_code is Plugin.run_code:
            raise UsageError(
                f"{target.name} ({target.type}) takes no standard input",
                hint="drop -i, or give the data as a file (`domarkx cp`)",
            )
        before = instance.head_version
        outcome = manager.workspaces.run_code(workspace, target.name, code, stdin=stdin)
        detail = {"code": code, "ok": outcome.ok, **_exit(outcome.output)}
        version, event = _commit(manager, instance, workspace, "exec", target.name, detail, before, stdin)
    return Executed(outcome, version.id, event, version.notes)


def _commit(
    manager: InstanceManager,
    instance: SessionInstance,
    workspace: Workspace,
    kind: str,
    resource: str,
    detail: dict[str, Any],
    before: str | None,
    stdin: bytes | None = None,
) -> tuple[WorkspaceVersion, EventRow | None]:
    """Commit the change and, when it changed anything, record it as an event that moves the head."""
    version = manager.workspaces.commit(workspace)
    if version.id == before:
        return version, None  # a read-only command or a copy of identical bytes leaves no trace
    event = manager.store.events.record(
        instance.id,
        messages=len(instance.messages),
        kind=kind,
        resource=resource,
        detail=detail,
        before=before,
        version=version.id,
        stdin=stdin,
    )
    return version, event


def code_target(workspaces: WorkspaceManager, workspace: Workspace, named: str | None) -> Resource:
    """The resource ``exec`` runs in: the named one, else the one that runs shell code, else the only one with code."""
    if named is not None:
        found = next((r for r in workspace.resources if r.name == named), None)
        if found is None:
            raise UsageError(f"no resource named {named!r}", hint=f"resources: {_listed(workspace)}")
        return found
    shell = workspaces.code_resource(workspace, COMMAND_LANG)
    if shell is not None:
        return shell
    running = [r for r in workspace.resources if workspaces.plugin(r.type).code is not None]
    if len(running) == 1:
        return running[0]
    raise UsageError("which resource? this instance has no shell to run commands in", hint=_name_one(workspace))


def is_shell(workspaces: WorkspaceManager, resource: Resource) -> bool:
    """Whether the resource runs shell commands (then ``exec -- a b`` is the command ``a b``, quoted)."""
    code = workspaces.plugin(resource.type).code
    return code is not None and COMMAND_LANG in code.languages


def copy_out(manager: InstanceManager, ref: str, path: bytes, dest: Path, *, resource: str | None = None) -> str:
    """Copy a file or directory of the instance's live workspace to ``dest`` on the host; the resource's name."""
    _stays_inside(path)
    instance_id = manager.resolve(ref)
    row = manager.store.instances.row(instance_id)
    workspace = manager.workspaces.open(row.workspace_id)
    target = file_target(manager.workspaces, workspace, resource)
    _plugin_copy(lambda: manager.workspaces.plugin(target.type).copy_out(target.id, path, dest), target)
    return target.name


def copy_in(
    manager: InstanceManager, ref: str, source: Path, path: bytes, *, resource: str | None = None
) -> tuple[str, str, EventRow | None, list[str]]:
    """Copy a host file or directory into the instance's workspace, commit, and record it.

    (the resource's name, the head version, the event — None if the copy changed nothing —, the commit's notes)
    """
    _stays_inside(path)
    if not os.path.lexists(source):
        raise UsageError(
            f"no such file or directory: {paths.escape(os.fsencode(source))}", hint="check the path on this machine"
        )
    with manager.using(manager.get(ref)) as instance:
        _refuse_stopped(instance.status)
        workspace = manager.workspaces.open(instance.workspace_id)
        target = file_target(manager.workspaces, workspace, resource)
        before = instance.head_version
        manager.store.workspaces.touch(target.id)  # the next commit must look at it
        _plugin_copy(lambda: manager.workspaces.plugin(target.type).copy_in(target.id, source, path), target)
        detail = {"source": paths.escape(os.fsencode(source)), "path": paths.escape(path)}
        version, event = _commit(manager, instance, workspace, "cp", target.name, detail, before)
    return target.name, version.id, event, version.notes


def file_target(workspaces: WorkspaceManager, workspace: Workspace, named: str | None) -> Resource:
    """The resource ``cp`` copies to or from: the named one, else the shell's, else the first with a work dir."""
    if named is not None:
        return code_target(workspaces, workspace, named)
    shell = workspaces.code_resource(workspace, COMMAND_LANG)
    if shell is not None:
        return shell
    for resource in workspace.resources:
        try:
            workspaces.plugin(resource.type).location(resource.id)
        except Unsupported:
            continue
        return resource
    raise UsageError("no resource of this instance has files", hint=_name_one(workspace))


def _stays_inside(path: bytes) -> None:
    """Refuse a path that climbs out (``..``) or hides a NUL, whatever the plugin would make of it.

    Each plugin confines paths to its work dir too (symlinks included); this is
    the same rule said once, for plugins written elsewhere.
    """
    if b"\0" in path or b".." in path.split(b"/"):
        raise PathEscapeError(
            f"{paths.escape(path)} leaves the resource's work dir", hint="give a path inside it, relative to its top"
        )


def _plugin_copy(copy: Callable[[], None], target: Resource) -> None:
    """Run a plugin's copy; a type that cannot copy says so as a usage error, a failing disk as one line."""
    try:
        copy()
    except Unsupported as exc:
        raise UsageError(exc.message, hint="name another resource with --resource") from exc
    except OSError as exc:
        raise DomarkxError(
            f"cannot copy ({target.name}): {exc.strerror or exc}", hint="check the path and its permissions"
        ) from exc


def _refuse_stopped(status: str) -> None:
    if status != "running":
        raise UsageError("the instance is stopped", hint="start it with `domarkx instances start`")


def _exit(output: Any) -> dict[str, Any]:
    """A command's exit status, for the record (other results have none)."""
    if isinstance(output, dict) and "exit_code" in output:
        return {"exit_code": output["exit_code"], "timed_out": bool(output.get("timed_out"))}
    return {}


def _listed(workspace: Workspace) -> str:
    return ", ".join(f"{r.name} ({r.type})" for r in workspace.resources)


def _name_one(workspace: Workspace) -> str:
    return f"name one with --resource: {_listed(workspace)}"
