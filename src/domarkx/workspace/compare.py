"""What changed between two workspace versions, resource by resource: the one place a workspace diff is made.

``domarkx diff``, the MCP server's ``diff`` tool and ``verify`` all call
:func:`compare`; each resource's plugin says what changed in it
(:meth:`Plugin.diff_versions`), so a third-party plugin joins without a
change here. :func:`render` writes the result as text in git's manner: a stat
per resource, then the patches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

from domarkx import ids
from domarkx.errors import UsageError
from domarkx.workspace.plugin import Change, ResourceDiff, Unsupported

if TYPE_CHECKING:
    from domarkx.data.store import Store
    from domarkx.workspace.host import PluginHost


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


def compare(workspaces: PluginHost, old: str, new: str) -> list[ResourceComparison]:
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


def _diff(workspaces: PluginHost, kind: str, old: str, new: str) -> ResourceDiff:
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
        parts += [f"note: {note}\n" for note in _notes(item)]
        if patches:
            parts += [_detail(change.detail) for change in item.diff.changes if change.detail]
    text = "".join(parts) or "no changes\n"
    if limit is not None and len(text) > limit:
        text = text[:limit] + f"\n[… {len(text) - limit} more characters of the diff left out]\n"
    return text


def _notes(item: ResourceComparison) -> list[str]:
    """The plugin's notes; for versions that differ in nothing it shows, a note saying so."""
    if item.diff.changes or item.diff.notes:
        return list(item.diff.notes)
    return ["nothing to show: the versions differ only in what the plugin does not compare"]


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


# -- what ``domarkx diff`` adds: naming points, a git-style stat, JSON ------------------------------

STAT_WIDTH = 40
"""Most ``+``/``-`` signs a stat line draws (longer counts are scaled, as git does)."""


@dataclass(frozen=True)
class Point:
    """A workspace version a person named: ``INSTANCE@N``, ``INSTANCE`` (its head), ``SNAPSHOT`` or a version id."""

    ref: str
    version: str


def resolve_point(store: Store, ref: str) -> Point:
    """The workspace version ``ref`` names (see :class:`Point`); a usage error says what is wrong with it."""
    name, at, index = ref.rpartition("@") if "@" in ref else (ref, "", "")
    if ids.is_digest(ref) and store.versions.exists(ref):
        return Point(ref, ref)
    if at:
        return Point(ref, _message_version(store, name, index))
    kind, found = store.resolve_any(ref)
    if kind == "instance":
        head = store.instances.row(found).head_version
        if head is None:
            raise UsageError(f"instance {ref} has no workspace version yet", hint="run it first")
        return Point(ref, head)
    state = store.snapshots.manifest(found).get("workspace_state") or {}
    version = state.get("workspace_version")
    if not isinstance(version, str) or not store.versions.exists(version):
        raise UsageError(
            f"snapshot {ref} has no workspace: it was imported, not committed from an instance",
            hint="run it, then diff the instance (INSTANCE@N)",
        )
    return Point(ref, version)


def conversation_point(store: Store, ref: str) -> Point:
    """Instance ``ref``'s workspace as its conversation last left it, before any later ``exec`` or ``cp``.

    ``diff INSTANCE`` compares it with the head, as ``git diff`` compares the
    work tree with the last commit: what was changed by hand since.
    """
    instance = store.instances.resolve(ref)
    row = store.instances.row(instance)
    version = store.instances.linked_version(instance, row.messages - 1, events=False) or row.initial_version
    if version is None:
        raise UsageError(f"instance {ref} has no recorded workspace version", hint="run `domarkx doctor`")
    return Point(f"{ref}@conversation", version)


def _message_version(store: Store, name: str, index: str) -> str:
    """The version after message ``index`` of instance ``name``: the one linked at or before it."""
    instance = store.instances.resolve(name)
    row = store.instances.row(instance)
    if not index.isdigit() or not int(index) < row.messages:
        span = f"0..{row.messages - 1}" if row.messages else "none"
        raise UsageError(f"{name}@{index}: no such message (the messages are {span})", hint="see `domarkx log`")
    version = store.instances.linked_version(instance, int(index)) or row.initial_version
    if version is None:
        raise UsageError(f"instance {name} has no recorded workspace version", hint="run `domarkx doctor`")
    return version


def stat(comparisons: list[ResourceComparison], *, indent: str = "") -> str:
    """Git's ``--stat``, per changed resource: a line per change with a ``+``/``-`` bar, then the totals."""
    changed = [c for c in comparisons if c.changed]
    if not changed:
        return f"{indent}no changes\n"
    width = max((len(ch.name) for c in changed for ch in c.diff.changes), default=0)
    most = max((ch.added + ch.removed for c in changed for ch in c.diff.changes), default=0)
    lines: list[str] = []
    for item in changed:
        lines.append(f"{indent}{item.name} ({item.type})")
        lines += [f"{indent} {ch.name.ljust(width)} | {_counts(ch, most)}".rstrip() for ch in item.diff.changes]
        lines += [f"{indent} note: {note}" for note in _notes(item)]
    changes = [ch for c in changed for ch in c.diff.changes]
    added, removed = sum(ch.added for ch in changes), sum(ch.removed for ch in changes)
    where = f"{len(changed)} resource{'s' if len(changed) != 1 else ''}"
    lines.append(
        f"{indent} {len(changes)} change{'s' if len(changes) != 1 else ''} in {where},"
        f" {added} insertion{'s' if added != 1 else ''}(+), {removed} deletion{'s' if removed != 1 else ''}(-)"
    )
    return "\n".join(lines) + "\n"


def _counts(change: Change, most: int) -> str:
    if change.binary:
        return f"Bin {change.detail.removeprefix('binary file, ')}"
    total = change.added + change.removed
    if not total:
        return change.status
    scale = min(1.0, STAT_WIDTH / most) if most else 1.0
    plus = max(1, round(change.added * scale)) if change.added else 0
    minus = max(1, round(change.removed * scale)) if change.removed else 0
    return f"{total} {'+' * plus}{'-' * minus}"


def to_json(comparisons: list[ResourceComparison], *, patches: bool = True) -> list[dict[str, object]]:
    """The comparison as plain data (``diff --json``, ``verify --json``)."""
    return [
        {
            "resource": c.name,
            "type": c.type,
            "old": c.old,
            "new": c.new,
            "changed": c.changed,
            "changes": [_change_json(ch, patches) for ch in c.diff.changes],
            "notes": list(c.diff.notes),
        }
        for c in comparisons
    ]


def _change_json(change: Change, patches: bool) -> dict[str, object]:
    found = asdict(change)
    if not patches:
        del found["detail"]
    return found


def steps(
    workspaces: PluginHost, initial: str, linked: list[tuple[int, str | None]]
) -> dict[int, list[ResourceComparison]]:
    """What each message changed (``log --stat``): its linked version against the one linked before it.

    ``linked``: (message index, version it links or None), in order; versions
    this store does not hold are skipped, as ``fork`` skips them.
    """
    found: dict[int, list[ResourceComparison]] = {}
    before = initial
    for number, version in linked:
        if version is None or not workspaces.has_version(version):
            continue
        found[number] = compare(workspaces, before, version)
        before = version
    return found
