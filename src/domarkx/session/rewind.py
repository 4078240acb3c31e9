"""Rewinding an instance in place without losing what comes after (``domarkx reset``, MCP ``rewind``).

Resetting an instance to message N keeps messages 0..N and brings every
resource back to the workspace version linked at or before N. What it
discards, the later messages and the workspace at the old head, becomes a
*hidden fork*: an ordinary instance, stopped, that ``instances ls`` leaves out
and ``instances ls -a`` lists, as git's reflog keeps commits no branch names.
``domarkx fork HIDDEN --at M`` brings any of it back.

The hidden fork adopts the instance's workspace as it is, and the instance
gets a fresh clone at message N. The other way round (load N in place, clone
the old head for the hidden fork) costs a load *and* a clone, and a clone of a
``python`` resource replays its cells, doing their side effects again, only to
keep a backup. So after a reset the instance's ``workspace_id`` is new; code
that holds an instance across a reset re-reads it (``InstanceManager.using``
does).

Resources whose plugin is not ``restorable`` (their state lives in a remote
service) are not rewound by any of this; :func:`unrestorable` names the
messages that touched them, for ``reset``, ``fork`` and ``verify`` to warn.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from domarkx.errors import UsageError

if TYPE_CHECKING:
    from domarkx.data.models import ConversationMessage, SessionInstance
    from domarkx.session.instance import InstanceManager
    from domarkx.workspace.manager import Workspace, WorkspaceManager


@dataclass(frozen=True)
class Unrestorable:
    """A resource domarkx cannot rewind, and the messages whose tool calls reached it."""

    resource: str
    type: str
    messages: list[int]

    def warning(self) -> str:
        """One line for a person: which resource, which messages, what it means."""
        shown = ", ".join(str(i) for i in self.messages[:10])
        if len(self.messages) > 10:
            shown += f" and {len(self.messages) - 10} more"
        plural = "s" if len(self.messages) > 1 else ""
        return (
            f"resource {self.resource} ({self.type}) cannot be restored by domarkx:"
            f" what message{plural} {shown} did there is neither undone nor redone"
        )


@dataclass(frozen=True)
class Reset:
    """What a reset did."""

    instance: SessionInstance
    at: int
    version: str
    """The workspace version the instance is at now."""
    hidden: str | None
    """The hidden fork holding the discarded tail; None when nothing was discarded."""
    discarded: int
    """How many messages moved to the hidden fork."""
    unrestorable: list[Unrestorable] = field(default_factory=list)


def reset(instances: InstanceManager, ref: str, at: int) -> Reset:
    """Rewind instance ``ref`` in place to message ``at``, keeping the tail in a hidden fork."""
    with instances.using(instances.get(ref)) as instance:
        return reset_held(instances, instance, at)


def reset_held(instances: InstanceManager, instance: SessionInstance, at: int, *, option: str = "--at") -> Reset:
    """:func:`reset` for an instance the caller already holds (``InstanceManager.using``).

    ``option``: how the caller's user named ``at``, for the out-of-range error.
    """
    check_index(instance, at, option)
    workspaces = instances.workspaces
    old = workspaces.open(instance.workspace_id)
    warnings = unrestorable(workspaces, old, instance.messages)
    old_head = workspaces.commit(old).id  # whatever the tools left uncommitted goes with the tail
    version = instances.version_at(instance, at)
    discarded = len(instance.messages) - at - 1
    if discarded == 0 and old_head == version:
        return Reset(instance, at, version, None, 0, warnings)
    store = instances.store
    hidden = secrets.token_hex(32)
    with store.provisioning():  # until the instance row owns the fresh workspace
        fresh = workspaces.clone(old, version, pending=True)
        try:
            tail = store.instances.row(instance.id)._replace(
                id=hidden, name=None, status="stopped", created=store.now(), head_version=old_head,
                parent_id=instance.id, parent_at=at, hidden=True,
            )  # fmt: skip
            with store.write():  # one transaction: the tail takes everything, the instance moves on
                store.instances.insert(tail, store.instances.bodies(instance.id))
                store.events.copy(instance.id, hidden, len(instance.messages))  # all of them, as it was
                store.instances.set_settings(hidden, store.instances.settings(instance.id))  # its model, say
                store.instances.rewind(instance.id, at, fresh.id, version)
                store.workspaces.claim(fresh.id)
        except BaseException:
            workspaces.destroy(fresh)
            raise
    workspaces.close(old)  # the hidden fork is stopped: release its kernels and containers
    instance.messages = instance.messages[: at + 1]
    instance.workspace_id, instance.head_version = fresh.id, version
    return Reset(instance, at, version, hidden, discarded, warnings)


def check_index(instance: SessionInstance, at: int, option: str) -> None:
    """A message index must name a message, as ``fork --at`` requires."""
    if not 0 <= at < len(instance.messages):
        last = len(instance.messages) - 1
        span = f"the messages are 0..{last}" if last >= 0 else "the instance has no messages"
        raise UsageError(f"{option} {at} is out of range: {span}", hint="see `domarkx log` for message indices")


def unrestorable_in(instances: InstanceManager, ref: str) -> list[Unrestorable]:
    """:func:`unrestorable` for a stored instance (what ``fork`` and ``verify`` warn about)."""
    instance = instances.get(ref)
    return unrestorable(instances.workspaces, instances.workspaces.open(instance.workspace_id), instance.messages)


def unrestorable(
    workspaces: WorkspaceManager, workspace: Workspace, messages: list[ConversationMessage]
) -> list[Unrestorable]:
    """The resources that cannot be rewound and the assistant messages whose tool calls reached them."""
    found: list[Unrestorable] = []
    for resource in workspace.resources:
        plugin = workspaces.plugin(resource.type)
        if plugin.restorable:
            continue
        names = {workspaces.tool_name(workspace, resource, t.name) for t in plugin.list_tools(resource.id)}
        touched = [
            index
            for index, message in enumerate(messages)
            if message.role == "assistant" and any(call.name in names for call in message.tool_calls)
        ]
        if touched:
            found.append(Unrestorable(resource.name, resource.type, touched))
    return found
