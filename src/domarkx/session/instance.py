"""Session instances: a snapshot brought to life with its own conversation and workspace.

An instance is stored as one row plus one row per message, so appending a turn
is one small transaction and a crash loses at most the step in flight.
"""

from __future__ import annotations

import contextlib
import gc
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domarkx import ids, trust
from domarkx.data.autonames import unused_name
from domarkx.data.instances import InstanceRow, lock_name
from domarkx.data.models import (
    ConversationMessage,
    SessionInstance,
    SessionSnapshot,
)
from domarkx.data.store import Store
from domarkx.errors import DomarkxError, UsageError
from domarkx.session import convert
from domarkx.session.snapshot import SnapshotManager

if TYPE_CHECKING:
    from domarkx.session.execute import Report, RunOptions
    from domarkx.session.rewind import Reset
    from domarkx.workspace.manager import ToolOutcome, Workspace, WorkspaceManager

Progress = Callable[[str], None]

SETUP_SCRIPT_LANGS = frozenset({"python", "py", "python3"})
"""A setup block in one of these that no resource runs declares tools, and domarkx runs it (docs/sessions.md)."""


def _quiet(_: str) -> None:
    """The default progress sink: say nothing."""


class InstanceManager:
    """Creates, stores, forks and exports instances (the ``docker run`` side)."""

    def __init__(self, store: Store, workspaces: WorkspaceManager | None = None) -> None:
        from domarkx.workspace.manager import WorkspaceManager

        self.store = store
        self.snapshots = SnapshotManager(store)
        self.workspaces = workspaces or WorkspaceManager(store)

    # -- references ----------------------------------------------------------

    def resolve(self, ref: str) -> str:
        """An instance id from a full id, a unique id prefix (≥ 4 hex) or a name."""
        return self.store.instances.resolve(ref)

    # -- persistence -----------------------------------------------------------

    def get(self, ref: str) -> SessionInstance:
        instance_id = self.resolve(ref)
        with self.store.read():
            row = self.store.instances.row(instance_id)
            bodies = self.store.instances.bodies(instance_id)
        with _gc_paused():
            messages = [ConversationMessage.model_validate_json(body) for body in bodies]
        return SessionInstance(
            id=row.id,
            name=row.name,
            snapshot_id=row.snapshot_id,
            workspace_id=row.workspace_id,
            status=row.status,  # type: ignore[arg-type]  # the store holds only statuses it was given
            created=row.created,
            head_version=row.head_version,
            messages=messages,
        )

    def messages(self, ref: str, start: int = 0, stop: int | None = None) -> list[ConversationMessage]:
        """Messages ``start`` up to ``stop`` (exclusive) of an instance, without loading the others."""
        bodies = self.store.instances.bodies(self.resolve(ref), start, stop)
        with _gc_paused():
            return [ConversationMessage.model_validate_json(body) for body in bodies]

    def summary(self, ref: str) -> dict[str, Any]:
        """The instance's row (message count, fork parent, hidden) without its messages."""
        return self.store.instances.row(self.resolve(ref))._asdict()

    def _insert(self, instance: SessionInstance, initial_version: str, parent: tuple[str, int] | None = None) -> None:
        row = InstanceRow(
            id=instance.id,
            name=instance.name,
            snapshot_id=instance.snapshot_id,
            workspace_id=instance.workspace_id,
            status=instance.status,
            created=instance.created,
            head_version=instance.head_version,
            initial_version=initial_version,
            messages=len(instance.messages),
            parent_id=parent[0] if parent else None,
            parent_at=parent[1] if parent else None,
        )
        self.store.instances.insert(row, [m.model_dump_json() for m in instance.messages])

    def save_messages(self, instance: SessionInstance, start: int, end: int | None = None) -> None:
        """Persist ``instance.messages[start:end]`` and the head version in one transaction.

        ``end`` lets a caller that changed one message in the middle store only that
        one: rewriting the whole tail each time made an offline run quadratic.
        """
        stop = len(instance.messages) if end is None else end
        bodies = [instance.messages[i].model_dump_json() for i in range(start, stop)]
        self.store.instances.save_messages(instance.id, start, bodies, instance.head_version)

    def settings(self, instance_id: str) -> dict[str, Any]:
        """What the instance remembers for its next turn (``model``, ``approve``…; see docs/sessions.md)."""
        return self.store.instances.settings(instance_id)

    def set_settings(self, instance_id: str, settings: dict[str, Any]) -> None:
        self.store.instances.set_settings(instance_id, settings)

    @contextlib.contextmanager
    def using(self, instance: SessionInstance) -> Iterator[SessionInstance]:
        """Work on ``instance`` alone: other processes wait for nothing, they are told it is busy.

        Two processes appending to one conversation would number their messages
        alike and overwrite each other's; with the lock, the second one stops
        with an error instead. Once held, the instance is re-read, so whatever
        another process stored since it was loaded is kept.
        """
        with self.store.hold(lock_name(instance.id)) as free:
            if not free:
                raise DomarkxError(
                    f"instance {instance.name or instance.id[:12]} is busy: another domarkx is working on it",
                    hint="wait for it to finish, then retry",
                )
            fresh = self.get(instance.id)
            instance.messages, instance.head_version, instance.status = fresh.messages, fresh.head_version, fresh.status
            instance.workspace_id = fresh.workspace_id  # a reset gives the instance a new one
            yield instance

    def set_status(self, ref: str, status: str) -> SessionInstance:
        with self.using(self.get(ref)) as instance:
            if status == "stopped":
                self.workspaces.close(self.workspaces.open(instance.workspace_id))
            self.store.instances.set_status(instance.id, status)
        instance.status = status  # type: ignore[assignment]
        return instance

    def remove(self, ref: str, *, force: bool = False) -> str:
        with self.using(self.get(ref)) as instance:
            if instance.status == "running" and not force:
                raise UsageError(
                    f"instance {instance.name or ids.short(instance.id)} is running",
                    hint="stop it first (`domarkx instances stop`) or pass --force",
                )
            workspace = self.workspaces.open(instance.workspace_id)
            with self.store.provisioning():
                # The rows go first, releasing the workspace in the same transaction: a kill
                # after it leaves a leftover workspace, never an instance without one.
                self.store.instances.delete(instance.id, workspace.id)
                self.workspaces.destroy(workspace)
            self.store.release(lock_name(instance.id))
        return instance.id

    # -- creation --------------------------------------------------------------

    def _new(self, snapshot_id: str, workspace: Workspace, name: str | None) -> SessionInstance:
        """An instance row to be; one nobody named gets a readable name (:mod:`domarkx.data.autonames`)."""
        if name is not None:
            self.store.instances.check_new_name(name)
        return SessionInstance(
            id=secrets.token_hex(32),
            name=name if name is not None else unused_name(self.store),
            snapshot_id=snapshot_id,
            workspace_id=workspace.id,
            created=self.store.now(),
        )

    def create(
        self,
        snapshot: SessionSnapshot,
        *,
        name: str | None = None,
        progress: Progress = _quiet,
        options: RunOptions | None = None,
        execute: bool = True,
    ) -> SessionInstance:
        """Provision the workspace, run setup and the assistant code blocks, store the instance.

        A snapshot committed from an instance carries its workspace state: the
        workspace is restored to it and nothing is re-executed. ``execute=False``
        stops after setup: the caller runs the messages itself (``verify``).
        """
        if name is not None:
            self.store.instances.check_new_name(name)
        config = self.workspaces.config_for(snapshot)
        trust.require(snapshot, config)  # before anything is made: a power the user did not grant
        state = snapshot.workspace_state
        with contextlib.ExitStack() as held:
            with self.store.provisioning():  # until the instance row owns the workspace
                if state:
                    progress("restoring the committed workspace")
                    workspace = self.workspaces.clone(config, state["workspace_version"], pending=True)
                else:
                    progress(f"creating workspace ({', '.join(r.type for r in config.resources)})")
                    workspace = self.workspaces.create(config, pending=True)
                try:
                    instance = self._new(snapshot.id, workspace, name)
                    instance.messages = self._linking_only_known_versions(convert.from_snapshot(snapshot), state)
                    if not state and snapshot.setup is not None:
                        progress(f"running the setup block ({snapshot.setup.lang})")
                        self.run_setup(snapshot, workspace)
                    instance.head_version = self.workspaces.commit(workspace).id
                    held.enter_context(self.store.hold(lock_name(instance.id)))  # new: it cannot be busy
                    self._insert(instance, instance.head_version)
                except BaseException:
                    self.workspaces.destroy(workspace)
                    raise
            if not state and execute:
                from domarkx.session.execute import Progress as StepProgress
                from domarkx.session.execute import RunOptions

                self.execute_document(instance, workspace, options or RunOptions(observer=StepProgress(progress)))
        return instance

    def _linking_only_known_versions(
        self, messages: list[ConversationMessage], state: dict[str, Any] | None
    ) -> list[ConversationMessage]:
        """A document's messages with only the workspace versions this store has (made here, or brought in).

        A document that will be run again gets its versions from the run; one
        restored from a committed state keeps those this store knows.
        """
        for message in messages:
            if message.workspace_version and not (state and self.workspaces.has_version(message.workspace_version)):
                message.workspace_version = None
        return messages

    def run_setup(self, snapshot: SessionSnapshot, workspace: Workspace) -> None:
        """Run the setup block in the resource that runs its language.

        A Python setup block no resource runs is a tool declaration script
        (docs/sessions.md): it runs here, and the tools it lists must not clash
        with the workspace's own.
        """
        setup = snapshot.setup
        assert setup is not None
        outcome = self.run_block(workspace, setup.lang or "", setup.text, setup.attrs)
        if outcome is None and (setup.lang or "").lower() in SETUP_SCRIPT_LANGS:
            clash = {t.spec.name for t in self.setup_tools(snapshot, workspace)} & {
                t.name for t in self.workspaces.tools(workspace)
            }
            if clash:
                raise UsageError(
                    f"setup-script tools clash with workspace tools: {', '.join(sorted(clash))}",
                    hint="rename the setup-script's functions",
                )
        elif outcome is not None and not outcome.ok:
            last = (outcome.text.strip().splitlines() or [""])[-1]
            raise UsageError(
                f"the setup block failed: {last}", hint="fix the setup block of the document and import it again"
            )

    def setup_tools(self, snapshot: SessionSnapshot, workspace: Workspace) -> list[Any]:
        """The tools a Python setup-script declares, loaded in this process (functions are not stored)."""
        setup = snapshot.setup
        lang = (setup.lang or "").lower() if setup is not None else ""
        if setup is None or lang not in SETUP_SCRIPT_LANGS or self.workspaces.code_runner(workspace, lang):
            return []
        from domarkx.tools.setup_script import load_setup_tools

        workdir = self.workspaces.host_directory(workspace.resources[0])
        tools = load_setup_tools(
            setup.text,
            workdir=workdir,
            path=snapshot.source or "<document>",
            line=setup.start + 2,
            host=trust.setup_on_host(snapshot),
        )
        return [replace(t, call=_in_directory(workdir, t.call)) for t in tools]

    def execute_document(
        self, instance: SessionInstance, workspace: Workspace, options: RunOptions | None = None
    ) -> Report:
        """Run each assistant message's code blocks and tool calls in order (the offline path: session.execute)."""
        from domarkx.session.execute import RunOptions, run_document

        return run_document(self, instance, workspace, options or RunOptions())

    def run_block(self, workspace: Workspace, lang: str, code: str, attrs: dict[str, str]) -> ToolOutcome | None:
        """Execute one code block in the resource that runs its language, as a tool call; None if none does."""
        target = self.workspaces.code_runner(workspace, lang, attrs.get("resource"))
        if target is None:
            return None
        tool, argument = target
        return self.workspaces.call(workspace, tool, {argument: code})

    # -- time travel -----------------------------------------------------------

    def fork(self, ref: str, at: int, *, name: str | None = None) -> SessionInstance:
        """A new instance with messages 0..``at`` and the workspace as it was then; it records its parent.

        It remembers what its parent does (model, approval, max steps: :meth:`settings`),
        whoever forks it (``fork``, ``edit``, the chat, the UI, the MCP server).
        """
        source = self.get(ref)
        if not 0 <= at < len(source.messages):
            raise UsageError(
                f"--at {at} is out of range: the messages are 0..{len(source.messages) - 1}",
                hint="see `domarkx log` for message indices",
            )
        version = self.version_at(source, at)
        with self.store.provisioning():  # until the fork's row owns the workspace
            workspace = self.workspaces.clone(self.workspaces.open(source.workspace_id), version, pending=True)
            try:
                fork = self._new(source.snapshot_id, workspace, name)
                fork.messages = [m.model_copy(deep=True) for m in source.messages[: at + 1]]
                fork.head_version = version
                with self.store.write():  # one transaction: the row, its events and its settings
                    self._insert(fork, self.initial_version(source), parent=(source.id, at))
                    self.store.events.copy(source.id, fork.id, at)
                    self.set_settings(fork.id, self.settings(source.id))
            except BaseException:
                self.workspaces.destroy(workspace)
                raise
        return fork

    def reset(self, ref: str, at: int) -> Reset:
        """Rewind the instance in place to message ``at``; the tail stays in a hidden fork (session/rewind.py)."""
        from domarkx.session.rewind import reset

        return reset(self, ref, at)

    def version_at(self, instance: SessionInstance, at: int) -> str:
        """The workspace version linked at or before message ``at`` (else the initial one).

        Only assistant messages link versions, and only versions this store has
        (made here, or brought with their content) are followed.
        """
        return self.store.instances.linked_version(instance.id, at) or self.initial_version(instance)

    def version_before(self, ref: str, at: int) -> str:
        """The workspace version linked before message ``at`` (else the initial one): what ``at`` started from."""
        instance_id = self.resolve(ref)
        row = self.store.instances.row(instance_id)
        linked = self.store.instances.linked_version(instance_id, at - 1)
        if linked or row.initial_version:
            return str(linked or row.initial_version)
        raise DomarkxError("the instance has no recorded initial workspace version", hint="run `domarkx doctor`")

    def initial_version(self, instance: SessionInstance) -> str:
        initial = self.store.instances.row(instance.id).initial_version
        if initial:
            return initial
        raise DomarkxError("the instance has no recorded initial workspace version", hint="run `domarkx doctor`")

    # -- export and commit ----------------------------------------------------

    def export(self, ref: str, *, at: int | None = None) -> str:
        """The instance as Markdown that ``domarkx import`` takes back losslessly."""
        from domarkx.parsing.markdown import line_offsets
        from domarkx.parsing.render import join_messages, with_format_marker

        instance = self.get(ref)
        if at is not None and not 0 <= at < len(instance.messages):
            raise UsageError(
                f"--at {at} is out of range: the messages are 0..{len(instance.messages) - 1}",
                hint="see `domarkx log` for message indices",
            )
        snapshot = self.snapshots.get(instance.snapshot_id)
        messages = instance.messages if at is None else instance.messages[: at + 1]
        offsets = line_offsets(snapshot.document)
        preamble = with_format_marker(snapshot.document[: offsets[snapshot.preamble_end]])
        return join_messages(preamble, [_markdown(m) for m in messages])

    def rendered(self, ref: str, *, only: int | None = None) -> list[tuple[int, str]]:
        """Each message (or message ``only``) with its index, as the Markdown ``export`` writes it.

        ``log --full`` and ``log INSTANCE N`` show a message whole (its code,
        outputs, tool calls and results) in the form a person reads and edits.
        """
        instance = self.get(ref)
        if only is None:
            return [(index, _markdown(message)) for index, message in enumerate(instance.messages)]
        from domarkx.session.rewind import check_index

        check_index(instance, only, "message")
        return [(only, _markdown(instance.messages[only]))]

    def commit(self, ref: str, *, tags: Sequence[str] = ()) -> tuple[str, bool]:
        """A new snapshot of the instance that starts from its current workspace (``docker commit``)."""
        with self.using(self.get(ref)) as instance:
            version = self.workspaces.commit(self.workspaces.open(instance.workspace_id))
        document = self.export(instance.id)
        snapshot = self.snapshots.parser.parse(document, path=f"instance:{ids.short(instance.id)}")
        snapshot.source = None
        snapshot.workspace_state = {"workspace_version": version.id, "resources": version.versions}
        from domarkx.session.snapshot import manifest

        snapshot.id = ids.digest_json(manifest(snapshot))
        created = self.snapshots.save(snapshot, tags=tags)
        return snapshot.id, created


def _markdown(message: ConversationMessage) -> str:
    """A message as written in its document when it came from one, else in canonical form."""
    from domarkx.parsing.render import edit_raw, render_message

    return edit_raw(message) if message.raw is not None else render_message(message)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while thousands of message objects are built.

    Building them triggers collections that scan every object alive, so the
    cost of a load grew faster than the number of messages: at 10,000 messages
    about a third of ``domarkx log``'s time went to the collector
    (bench/bench_scaling.py). Parsing JSON makes no cycles, so nothing is missed.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _in_directory(workdir: Path, call: Callable[..., Any]) -> Callable[..., Any]:
    """Setup-script tools run in the workspace directory, as the script itself did."""

    def run(**kwargs: Any) -> Any:
        with contextlib.chdir(workdir):
            return call(**kwargs)

    return run
