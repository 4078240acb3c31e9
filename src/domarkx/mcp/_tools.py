"""The session tools an MCP client gets beside the workspace's: checkpoint, log, diff, rewind, fork.

Each is described by a pydantic model (extra keys refused, no coercion), which
gives both the JSON schema the client sees and the check its arguments pass,
so the two cannot disagree. They work on the instance the recorder holds
(``InstanceManager.using``) and return the text the client reads; a
:class:`DomarkxError` becomes an error result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domarkx import ids
from domarkx.errors import DomarkxError
from domarkx.session.rewind import check_index, reset_held, unrestorable
from domarkx.tools.schema import parameters_schema
from domarkx.workspace.compare import compare, render
from domarkx.workspace.plugin import ToolSpec

if TYPE_CHECKING:
    from domarkx.data.models import SessionInstance
    from domarkx.session.instance import InstanceManager

LOG_LINES = 300
"""Entries ``log`` shows (the newest); ``domarkx log`` shows all."""
DIFF_CHARS = 60_000
"""Characters of a ``diff`` result; the rest is left out with a note."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Checkpoint(_Strict):
    """Mark this point of the session, workspace included, so that ``rewind`` can come back to it.

    Returns the message index to give ``rewind``. Every call is versioned
    anyway; a checkpoint names a point worth returning to.
    """

    note: str = Field(description="What this point is, in a few words (shown by log).")


class Log(_Strict):
    """The session so far: one line per message (index, role, workspace version, summary), newest last."""


class Diff(_Strict):
    """What changed in the workspace between two messages: files as a stat and unified patches, per resource."""

    from_: int = Field(alias="from", description="Message index of the older state (see log).")
    to: int | None = Field(None, description="Message index of the newer state; default: the workspace now.")


class Rewind(_Strict):
    """Bring the session and the whole workspace back to message ``to`` (e.g. a checkpoint).

    Every file is restored, whatever changed it. Later messages are not lost:
    they stay in a hidden instance whose id the result gives.
    """

    to: int = Field(description="Message index to return to (see checkpoint and log).")


class Fork(_Strict):
    """Copy the session up to message ``at``, workspace included, into a new instance; this session stays here."""

    at: int = Field(description="Message index the copy ends with (see log).")


MODELS: dict[str, type[_Strict]] = {
    "checkpoint": Checkpoint,
    "log": Log,
    "diff": Diff,
    "rewind": Rewind,
    "fork": Fork,
}


def specs() -> list[ToolSpec]:
    """The session tools as a client lists them."""
    return [
        ToolSpec(name=name, description=(model.__doc__ or name).strip(), parameters=parameters_schema(model))
        for name, model in MODELS.items()
    ]


class SessionTools:
    """Runs one session tool on an instance held by the caller."""

    def __init__(self, instances: InstanceManager) -> None:
        self.instances = instances
        self.workspaces = instances.workspaces

    def run(self, instance: SessionInstance, name: str, arguments: dict[str, object], index: int) -> tuple[bool, str]:
        """(ok, text) of session tool ``name``; ``index``: where the call's assistant message will go."""
        try:
            args = MODELS[name].model_validate(arguments)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "arguments"
            return False, f"error: {name}: {where}: {first['msg']}"
        try:
            if isinstance(args, Checkpoint):
                return True, self.checkpoint(args, index)
            if isinstance(args, Diff):
                return True, self.diff(instance, args)
            if isinstance(args, Rewind):
                return True, self.rewind(instance, args)
            if isinstance(args, Fork):
                return True, self.fork(instance, args)
            return True, self.log(instance)
        except DomarkxError as exc:
            return False, f"error: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")

    @staticmethod
    def checkpoint(args: Checkpoint, index: int) -> str:
        point = index + 1  # the call's result: the last message of this step
        return f"checkpoint {args.note!r} is message {point}: rewind(to={point}) brings the session and workspace back"

    def log(self, instance: SessionInstance) -> str:
        entries = self.instances.store.instances.history(instance.id)
        shown = entries[-LOG_LINES:]
        earlier = len(entries) - len(shown)
        lines = [f"({earlier} earlier messages: see `domarkx log`)"] if earlier else []
        for e in shown:
            version = ids.short(e.workspace_version) if e.workspace_version else "-"
            lines.append(f"{e.number:>4}  {e.role:<9}  {version:<12}  {e.summary()}")
        return "\n".join(lines) + "\n" if lines else "no messages yet\n"

    def diff(self, instance: SessionInstance, args: Diff) -> str:
        check_index(instance, args.from_, "from")
        old = self.instances.version_at(instance, args.from_)
        if args.to is None:
            new = self.workspaces.commit(self.workspaces.open(instance.workspace_id)).id
        else:
            check_index(instance, args.to, "to")
            new = self.instances.version_at(instance, args.to)
        return render(compare(self.workspaces, old, new), limit=DIFF_CHARS)

    def rewind(self, instance: SessionInstance, args: Rewind) -> str:
        done = reset_held(self.instances, instance, args.to, option="to")
        text = f"rewound to message {args.to}, workspace {ids.short(done.version)}"
        if done.hidden is not None:
            last = args.to + done.discarded
            text += (
                f"; messages {args.to + 1}..{last} and the workspace before are kept in hidden instance"
                f" {done.hidden[:12]} (`domarkx fork {done.hidden[:12]} --at {last}` brings them back)"
            )
        return "\n".join([text, *(f"warning: {w.warning()}" for w in done.unrestorable)]) + "\n"

    def fork(self, instance: SessionInstance, args: Fork) -> str:
        check_index(instance, args.at, "at")
        new = self.instances.fork(instance.id, args.at)
        workspace = self.workspaces.open(instance.workspace_id)
        warnings = unrestorable(self.workspaces, workspace, instance.messages)
        text = (
            f"forked at message {args.at}: new instance {new.id}; this session stays on {instance.id[:12]}"
            f" (`domarkx mcp {new.id[:12]}` serves the fork)"
        )
        return "\n".join([text, *(f"warning: {w.warning()}" for w in warnings)]) + "\n"
