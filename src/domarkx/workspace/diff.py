"""Comparing two versions of a resource's files, for plugins that can be browsed.

:meth:`Plugin.diff_versions` falls back on :func:`file_diff`, which walks both
versions through :meth:`Plugin.list_version` and :meth:`Plugin.read_version`.
A plugin with a cheaper way (git's tree diff) overrides ``diff_versions`` and
may still use :func:`text_change` so every plugin shows a file change alike.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Literal

from domarkx import paths
from domarkx.workspace.plugin import Change, Entry, ResourceDiff

if TYPE_CHECKING:
    from domarkx.workspace.plugin import Plugin

MAX_PATCH_BYTES = 1 << 20
"""Files larger than this are summarised, not patched."""


def file_diff(plugin: Plugin, old: str, new: str) -> ResourceDiff:
    """Every file added, removed or changed between two versions, by walking both trees."""
    before = _walk(plugin, old)
    after = _walk(plugin, new)
    changes: list[Change] = []
    for path in sorted(before.keys() | after.keys()):
        a, b = before.get(path), after.get(path)
        if a is not None and b is not None and a == b and a.kind != "file":
            continue
        old_data = _content(plugin, old, path, a)
        new_data = _content(plugin, new, path, b)
        if a is not None and b is not None and old_data == new_data and a.executable == b.executable:
            continue
        changes.append(text_change(path, old_data, new_data))
    return ResourceDiff(changes=changes)


def text_change(path: bytes, old: bytes | None, new: bytes | None) -> Change:
    """One file's change: a unified patch for text, a summary for binary or large files."""
    status: Literal["added", "removed", "modified"] = (
        "added" if old is None else "removed" if new is None else "modified"
    )
    name = paths.escape(path)
    old_text, new_text = _text(old), _text(new)
    if old_text is None or new_text is None:
        sizes = f"{len(old or b'')} → {len(new or b'')} bytes"
        return Change(kind="file", name=name, status=status, detail=f"binary file, {sizes}", binary=True)
    patch = list(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"a/{name}" if old is not None else "/dev/null",
            tofile=f"b/{name}" if new is not None else "/dev/null",
        )
    )
    added = sum(1 for line in patch if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in patch if line.startswith("-") and not line.startswith("---"))
    detail = "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in patch)
    return Change(kind="file", name=name, status=status, added=added, removed=removed, detail=detail)


def _text(data: bytes | None) -> str | None:
    """The text of a file small and clean enough to patch; ``""`` for an absent one."""
    if data is None:
        return ""
    if len(data) > MAX_PATCH_BYTES or b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _walk(plugin: Plugin, version: str, top: bytes = b"") -> dict[bytes, Entry]:
    found: dict[bytes, Entry] = {}
    pending = [top]
    while pending:
        directory = pending.pop()
        for entry in plugin.list_version(version, directory):
            path = directory + b"/" + entry.name if directory else entry.name
            if entry.kind == "dir":
                pending.append(path)
            else:
                found[path] = entry
    return found


def _content(plugin: Plugin, version: str, path: bytes, entry: Entry | None) -> bytes | None:
    if entry is None:
        return None
    if entry.kind == "link":
        return b"symlink -> " + (entry.target or b"")
    if entry.kind != "file":
        return b""
    return plugin.read_version(version, path)
