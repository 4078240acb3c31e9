"""What the pages ask for, as JSON-ready data: one function per endpoint, over the managers.

Nothing here knows about HTTP (``server.py`` does) or SQL (the managers do).
Every text that came from a document, a model or a file travels as data the
page shows with ``textContent``, except message prose, which
:func:`domarkx.ui.markdown.render` has made safe HTML. File names travel in
their escaped form (:mod:`domarkx.paths`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from domarkx import ids, paths
from domarkx.data.models import ConversationMessage
from domarkx.data.store import Store
from domarkx.errors import ReferenceNotFound, UsageError
from domarkx.session.instance import InstanceManager
from domarkx.ui import markdown
from domarkx.ui.security import workspace_path
from domarkx.workspace.plugin import Plugin, Unsupported

PAGE = 50
"""Messages per page of the timeline: the first screen of a 10,000-message instance reads 50."""
MAX_PAGE = 500
MAX_TEXT = 1 << 20
"""A file bigger than this is shown as a summary (it can still be downloaded)."""


@dataclass
class Context:
    """What one request works with: its own store connection and managers (SQLite connections stay in their thread)."""

    store: Store
    instances: InstanceManager

    @classmethod
    def open(cls, store: Store) -> Context:
        return cls(store, InstanceManager(store))


# -- lists -------------------------------------------------------------------------


def overview(ctx: Context, *, hidden: bool = False) -> dict[str, Any]:
    """Snapshots and instances, with what the fork tree needs (each instance's parent and message)."""
    snapshots = [row._asdict() for row in ctx.store.snapshots.listing()]
    by_id = {s["id"]: s for s in snapshots}
    instances = [
        {
            **row._asdict(),
            "title": by_id.get(row.snapshot_id, {}).get("title"),
            "tags": by_id.get(row.snapshot_id, {}).get("tags", []),
        }
        for row in ctx.store.instances.listing(hidden=hidden)
    ]
    return {"snapshots": snapshots, "instances": instances}


def instance(ctx: Context, ref: str) -> dict[str, Any]:
    """One instance's header: ids, snapshot, status, size, lineage, resources."""
    row = ctx.instances.summary(ref)
    snapshot = ctx.store.snapshots.row(row["snapshot_id"])
    workspace = ctx.instances.workspaces.open(row["workspace_id"])
    return {
        **row,
        "title": snapshot.title,
        "tags": snapshot.tags,
        "resources": [{"name": r.name, "type": r.type} for r in workspace.resources],
        "settings": ctx.store.instances.settings(row["id"]),
    }


def messages(ctx: Context, ref: str, *, start: int | None, stop: int | None) -> dict[str, Any]:
    """A page of the timeline; without bounds, the last :data:`PAGE` messages (where a conversation goes on)."""
    total = ctx.instances.summary(ref)["messages"]
    if start is None and stop is None:
        stop = total
    if stop is None:
        stop = (start or 0) + PAGE
    stop = max(0, min(stop, total))
    if start is None:
        start = stop - PAGE
    start = max(0, min(start, stop))
    if stop - start > MAX_PAGE:
        raise UsageError(f"at most {MAX_PAGE} messages at once")
    page = ctx.instances.messages(ref, start, stop)
    return {"total": total, "start": start, "messages": [message(start + i, m) for i, m in enumerate(page)]}


def message(index: int, msg: ConversationMessage) -> dict[str, Any]:
    """One message for the page: prose as safe HTML; code, outputs, calls and results as text."""
    outputs = {o.block: o for o in msg.outputs}
    code = []
    for i, block in enumerate(msg.code):
        out = outputs.get(i)
        code.append(
            {
                "lang": block.lang or "",
                "text": block.text,
                "recorded_output": "output" in block.flags,
                "output": {"ok": out.ok, "text": out.text} if out else None,
            }
        )
    is_tool = msg.role == "tool"
    return {
        "index": index,
        "role": msg.role,
        "html": "" if is_tool else markdown.render(msg.content),
        "text": msg.content if is_tool else "",
        "model": msg.metadata.get("model") if isinstance(msg.metadata.get("model"), str) else None,
        "workspace_version": msg.workspace_version,
        "tool_call_id": msg.tool_call_id,
        "tool_ok": msg.tool_ok,
        "tool_name": msg.metadata.get("name") if is_tool else None,
        "code": code,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": json.dumps(c.arguments, indent=2, ensure_ascii=False)}
            for c in msg.tool_calls
        ],
    }


# -- the workspace at a message ----------------------------------------------------


def _version_at(ctx: Context, ref: str, at: int | None) -> str:
    """The workspace version at message ``at`` (linked at or before it), or the head."""
    row = ctx.instances.summary(ref)
    if at is None:
        return str(row["head_version"])
    if not 0 <= at < row["messages"]:
        raise UsageError(f"message {at} is out of range: the messages are 0..{row['messages'] - 1}")
    return ctx.instances.version_before(ref, at + 1)


def _resource(ctx: Context, version: str, name: str | None) -> tuple[str, Plugin, str]:
    """(name, plugin, resource version) of one resource of a workspace version (the first by default)."""
    resources = ctx.instances.workspaces.version_info(version)
    if not resources:
        raise UsageError("this workspace has no resources")
    chosen = name if name is not None else sorted(resources)[0]
    if chosen not in resources:
        raise ReferenceNotFound(f"no resource {chosen!r}", hint=f"resources: {', '.join(sorted(resources))}")
    kind, resource_version = resources[chosen]
    return chosen, ctx.instances.workspaces.plugin(kind), resource_version


def diff(ctx: Context, ref: str, at: int) -> dict[str, Any]:
    """What message ``at``'s tool calls changed: its workspace version against the one linked before it."""
    new = _version_at(ctx, ref, at)
    old = ctx.instances.version_before(ref, at)
    before = ctx.instances.workspaces.version_info(old)
    after = ctx.instances.workspaces.version_info(new)
    resources = []
    for name in sorted(before.keys() | after.keys()):  # a workspace keeps its resources: both name the same
        kind, a = before.get(name) or after[name]
        b = after.get(name, (kind, a))[1]
        entry: dict[str, Any] = {"name": name, "type": kind, "changes": [], "notes": []}
        if a != b:
            try:
                found = ctx.instances.workspaces.plugin(kind).diff_versions(a, b)
            except Unsupported as exc:
                entry["notes"] = [exc.message]
            else:
                entry["changes"] = [asdict(c) for c in found.changes]
                entry["notes"] = list(found.notes)
        resources.append(entry)
    return {"old": old, "new": new, "resources": resources}


def files(ctx: Context, ref: str, *, at: int | None, resource: str | None, path: str) -> dict[str, Any]:
    """One directory of one resource, as it was at message ``at``."""
    version = _version_at(ctx, ref, at)
    name, plugin, resource_version = _resource(ctx, version, resource)
    where = workspace_path(path)
    try:
        entries = plugin.list_version(resource_version, where)
    except Unsupported as exc:
        return {"version": version, "resource": name, "path": path, "entries": [], "note": exc.message}
    shown = [
        {
            "name": paths.escape(e.name),
            "kind": e.kind,
            "size": e.size,
            "executable": e.executable,
            "target": paths.escape(e.target) if e.target is not None else None,
        }
        for e in sorted(entries, key=lambda e: (e.kind != "dir", e.name))
    ]
    resources = sorted(ctx.instances.workspaces.version_info(version))
    return {"version": version, "resource": name, "resources": resources, "path": path, "entries": shown}


def file_bytes(ctx: Context, ref: str, *, at: int | None, resource: str | None, path: str) -> tuple[str, bytes]:
    """(resource name, bytes) of one file of a resource at message ``at``."""
    version = _version_at(ctx, ref, at)
    name, plugin, resource_version = _resource(ctx, version, resource)
    where = workspace_path(path)
    if where == b"":
        raise UsageError("that is the workspace's top, not a file")
    return name, plugin.read_version(resource_version, where)


def file(ctx: Context, ref: str, *, at: int | None, resource: str | None, path: str) -> dict[str, Any]:
    """One file for the viewer: its text when it is small UTF-8, else what it is."""
    name, data = file_bytes(ctx, ref, at=at, resource=resource, path=path)
    text: str | None = None
    if len(data) <= MAX_TEXT and b"\0" not in data[:8192]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    return {"resource": name, "path": path, "size": len(data), "text": text}


# -- actions -----------------------------------------------------------------------


def export(ctx: Context, ref: str, at: int | None) -> tuple[str, str]:
    """(file name, Markdown) of the instance, whole or up to message ``at``."""
    row = ctx.instances.summary(ref)
    label = row["name"] or ids.short(row["id"])
    suffix = f"-at-{at}" if at is not None else ""
    return f"{label}{suffix}.md", ctx.instances.export(row["id"], at=at)


def fork(ctx: Context, ref: str, body: dict[str, Any]) -> dict[str, Any]:
    at = _integer(body, "at")
    name = body.get("name") or None
    if name is not None and not isinstance(name, str):
        raise UsageError("name must be text")
    new = ctx.instances.fork(ref, at, name=name)  # the fork remembers its parent's model
    return {"id": new.id, "name": new.name, "at": at}


def rewind(ctx: Context, ref: str, body: dict[str, Any]) -> dict[str, Any]:
    """Rewind in place to message ``at``; the discarded tail stays as a hidden fork (``InstanceManager.reset``)."""
    at = _integer(body, "at")
    done = ctx.instances.reset(ref, at)
    return {
        "id": done.instance.id,
        "at": done.at,
        "kept": done.hidden,
        "discarded": done.discarded,
        "warnings": [u.warning() for u in done.unrestorable],
    }


def _integer(body: dict[str, Any], key: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(f"{key} must be a message index (a whole number)")
    return value
