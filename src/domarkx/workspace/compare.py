"""What changed between two workspace versions, resource by resource: the one place a workspace diff is made.

``domarkx diff``, the MCP server's ``diff`` tool and ``verify`` all call
:func:`compare`; each resource's plugin says what changed in it
(:meth:`Plugin.diff_versions`), so a third-party plugin joins without a
change here. :func:`render` writes the result as text in git's manner: a stat
per resource, then the patches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from domarkx import ids
from domarkx.workspace.plugin import Change, ResourceDiff, Unsupported

if TYPE_CHECKING:
    from domarkx.workspace.manager import WorkspaceManager


@dataclass(frozen=True)
class ResourceComparison:
    """One resource of two workspace versions: its type, its two versions and what changed."""

    name: str
    type: str
    old: str | None
    """The resource's version in the older workspace version; None if it was not there."""
    new: str | None
    diff: ResourceDiff = field(default_factory=ResourceDiff)

    @property
    def changed(self) -> bool:
        return self.old != self.new


def compare(workspaces: WorkspaceManager, old: str, new: str) -> list[ResourceComparison]:
    """Every resource of workspace versions ``old`` and ``new``, by name, with its plugin's diff.

    Equal resource versions are equal states (content addressing), so they are
    not diffed. A plugin that cannot diff says so in the resource's notes.
    """
    before, after = workspaces.version_info(old), workspaces.version_info(new)
    found: list[ResourceComparison] = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        kind = (b or a or ("", ""))[0]
        old_version, new_version = a[1] if a else None, b[1] if b else None
        if a is None or b is None or a[0] != b[0]:
            status: Literal["added", "removed", "modified"] = (
                "added" if a is None else "removed" if b is None else "modified"
            )
            note = Change(kind="resource", name=name, status=status, detail=f"resource {name} ({kind}) {status}")
            found.append(ResourceComparison(name, kind, old_version, new_version, ResourceDiff(changes=[note])))
        elif old_version == new_version:
            found.append(ResourceComparison(name, kind, old_version, new_version))
        else:
            assert old_version is not None and new_version is not None
            found.append(
                ResourceComparison(
                    name, kind, old_version, new_version, _diff(workspaces, kind, old_version, new_version)
                )
            )
    return found


def _diff(workspaces: WorkspaceManager, kind: str, old: str, new: str) -> ResourceDiff:
    plugin = workspaces.plugin(kind)
    try:
        return plugin.diff_versions(old, new)
    except Unsupported as exc:
        return ResourceDiff(notes=[exc.message])


def render(comparisons: list[ResourceComparison], *, patches: bool = True, limit: int | None = None) -> str:
    """The comparison as text: per changed resource a stat line per change, then (``patches``) the details.

    ``limit`` caps the text in characters, saying how much was left out.
    """
    parts: list[str] = []
    for item in comparisons:
        if not item.changed:
            continue
        parts.append(f"== {item.name} ({item.type}) {_short(item.old)} → {_short(item.new)}\n")
        parts += [_stat(change) for change in item.diff.changes]
        parts += [f"note: {note}\n" for note in item.diff.notes]
        if patches:
            parts += [_detail(change.detail) for change in item.diff.changes if change.detail]
    text = "".join(parts) or "no changes\n"
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"\n[… {len(text) - limit} more characters of the diff left out]\n"
    return text


def _stat(change: Change) -> str:
    if change.binary:
        counts = "binary"
    elif change.added or change.removed:
        counts = f"+{change.added} -{change.removed}"
    else:
        counts = ""
    return f" {change.status:8} {change.name}  {counts}".rstrip() + "\n"


def _detail(detail: str) -> str:
    return detail if detail.endswith("\n") else detail + "\n"


def _short(version: str | None) -> str:
    return ids.short(version) if version else "-"
