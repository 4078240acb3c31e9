"""Session instances: a snapshot brought to life with its own conversation and workspace.

An instance is stored as one row plus one row per message, so appending a turn
is one small transaction and a crash loses at most the step in flight.
"""

from __future__ import annotations

import contextlib
import gc
import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domarkx import ids
from domarkx.data.models import (
    BlockOutput,
    ConversationMessage,
    SessionInstance,
    SessionSnapshot,
)
from domarkx.data.store import Store
from domarkx.errors import AmbiguousReference, DomarkxError, ReferenceNotFound, UsageError
from domarkx.session import convert
from domarkx.session.snapshot import SnapshotManager
from domarkx.workspace.plugin import resource_path

if TYPE_CHECKING:
    from domarkx.workspace.manager import Workspace, WorkspaceManager

Progress = Callable[[str], None]

SHELL_LANGS = {"bash", "sh", "shell", "zsh", "console"}
PYTHON_LANGS = {"python", "py", "python3"}
SQL_LANGS = {"sql", "sqlite"}


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
        """An instance id from a name, a full id or a unique id prefix (≥ 4 hex)."""
        return resolve_instance(self.store, ref)

    # -- persistence -----------------------------------------------------------

    def get(self, ref: str) -> SessionInstance:
        instance_id = self.resolve(ref)
        row = self.store.db.execute("SELECT * FROM instances WHERE id = ?", (instance_id,)).fetchone()
        rows = self.store.db.execute("SELECT body FROM messages WHERE instance_id = ? ORDER BY idx", (instance_id,))
        with _gc_paused():
            messages = [ConversationMessage.model_validate_json(body) for (body,) in rows]
        return SessionInstance(
            id=row["id"],
            name=row["name"],
            snapshot_id=row["snapshot_id"],
            workspace_id=row["workspace_id"],
            status=row["status"],
            created=row["created"],
            head_version=row["head_version"],
            messages=messages,
        )

    def _insert(self, instance: SessionInstance, initial_version: str) -> None:
        with self.store.write() as db:
            db.execute(
                "INSERT INTO instances(id, name, snapshot_id, workspace_id, status, created, head_version,"
                " initial_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    instance.id,
                    instance.name,
                    instance.snapshot_id,
                    instance.workspace_id,
                    instance.status,
                    instance.created,
                    instance.head_version,
                    initial_version,
                ),
            )
            db.executemany(
                "INSERT INTO messages(instance_id, idx, body) VALUES (?, ?, ?)",
                [(instance.id, i, m.model_dump_json()) for i, m in enumerate(instance.messages)],
            )
            self.workspaces.claim(db, instance.workspace_id)

    def save_messages(self, instance: SessionInstance, start: int, end: int | None = None) -> None:
        """Persist ``instance.messages[start:end]`` and the head version in one transaction.

        ``end`` lets a caller that changed one message in the middle store only that
        one: rewriting the whole tail each time made an offline run quadratic.
        """
        stop = len(instance.messages) if end is None else end
        with self.store.write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO messages(instance_id, idx, body) VALUES (?, ?, ?)",
                [(instance.id, i, instance.messages[i].model_dump_json()) for i in range(start, stop)],
            )
            db.execute("UPDATE instances SET head_version = ? WHERE id = ?", (instance.head_version, instance.id))

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
            yield instance

    def set_status(self, ref: str, status: str) -> SessionInstance:
        with self.using(self.get(ref)) as instance:
            if status == "stopped":
                self.workspaces.close(self.workspaces.open(instance.workspace_id))
            with self.store.write() as db:
                db.execute("UPDATE instances SET status = ? WHERE id = ?", (status, instance.id))
        instance.status = status  # type: ignore[assignment]
        return instance

    def listing(self, *, hidden: bool = False) -> list[dict[str, Any]]:
        """Every instance, newest first. (ui lane stand-in for the signature the lineage migration brings:
        ``hidden`` asks for the tails that resets kept too; until then there are none.)"""
        rows = self.store.db.execute(
            "SELECT i.id, i.name, i.snapshot_id, i.status, i.created, i.head_version,"
            " (SELECT COUNT(*) FROM messages m WHERE m.instance_id = i.id) AS messages"
            " FROM instances i ORDER BY i.created DESC, i.id"
        )
        return [dict(r) for r in rows]

    # -- reading a part of a long instance (ui lane stand-ins; the lead may move them behind data/) --

    def summary(self, ref: str) -> dict[str, Any]:
        """The instance's row and its number of messages, without reading the messages."""
        instance_id = self.resolve(ref)
        row = self.store.db.execute(
            "SELECT i.*, (SELECT COUNT(*) FROM messages m WHERE m.instance_id = i.id) AS messages"
            " FROM instances i WHERE i.id = ?",
            (instance_id,),
        ).fetchone()
        return dict(row)

    def messages(self, ref: str, start: int, stop: int) -> list[ConversationMessage]:
        """Messages ``start``..``stop - 1`` alone: a page of a long instance costs what the page costs."""
        rows = self.store.db.execute(
            "SELECT body FROM messages WHERE instance_id = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (self.resolve(ref), start, stop),
        )
        return [ConversationMessage.model_validate_json(body) for (body,) in rows]

    def version_before(self, ref: str, at: int) -> str:
        """The workspace version linked to the last message before ``at`` (else the initial one)."""
        instance_id = self.resolve(ref)
        row = self.store.db.execute(
            "SELECT json_extract(body, '$.workspace_version') AS v FROM messages WHERE instance_id = ? AND idx < ?"
            " AND v IS NOT NULL ORDER BY idx DESC LIMIT 1",
            (instance_id, at),
        ).fetchone()
        if row is not None:
            return str(row[0])
        initial = self.summary(instance_id)["initial_version"]
        if not initial:
            raise DomarkxError("the instance has no recorded initial workspace version", hint="run `domarkx doctor`")
        return str(initial)

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
                with self.store.write() as db:
                    db.execute("DELETE FROM messages WHERE instance_id = ?", (instance.id,))
                    db.execute("DELETE FROM instances WHERE id = ?", (instance.id,))
                    self.workspaces.claim(db, workspace.id, owned=False)
                self.workspaces.destroy(workspace)
            self.store.release(lock_name(instance.id))
        return instance.id

    # -- creation --------------------------------------------------------------

    def _new(self, snapshot_id: str, workspace: Workspace, name: str | None) -> SessionInstance:
        if name is not None:
            self._check_name(name)
        return SessionInstance(
            id=secrets.token_hex(32),
            name=name,
            snapshot_id=snapshot_id,
            workspace_id=workspace.id,
            created=self.store.now(),
        )

    def _check_name(self, name: str) -> None:
        if not name or not all(c.isalnum() or c in "._-" for c in name) or name[0] in ".-":
            raise UsageError(f"invalid instance name {name!r}", hint="use letters, digits, '.', '_' and '-'")
        if self.store.db.execute("SELECT 1 FROM instances WHERE name = ?", (name,)).fetchone():
            raise UsageError(f"an instance named {name!r} already exists", hint="pick another --name")

    def create(
        self, snapshot: SessionSnapshot, *, name: str | None = None, progress: Progress = _quiet
    ) -> SessionInstance:
        """Provision the workspace, run setup and the assistant code blocks, store the instance.

        A snapshot committed from an instance carries its workspace state: the
        workspace is restored to it and nothing is re-executed.
        """
        if name is not None:
            self._check_name(name)
        config = self.workspaces.config_for(snapshot)
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
                    instance.messages = convert.from_snapshot(snapshot)
                    if not state and snapshot.setup is not None:
                        progress(f"running the setup block ({snapshot.setup.lang})")
                        self.run_setup(snapshot, workspace)
                    instance.head_version = self.workspaces.commit(workspace).id
                    held.enter_context(self.store.hold(lock_name(instance.id)))  # new: it cannot be busy
                    self._insert(instance, instance.head_version)
                except BaseException:
                    self.workspaces.destroy(workspace)
                    raise
            if not state:
                self.execute_document(instance, workspace, progress)
        return instance

    def run_setup(self, snapshot: SessionSnapshot, workspace: Workspace) -> None:
        """Run the setup block in the resource that speaks its language.

        A Python setup block with no ``python`` resource to run in is a tool
        declaration script (docs/sessions.md): it runs here, and the tools it
        lists must not clash with the workspace's own.
        """
        setup = snapshot.setup
        assert setup is not None
        outcome = self.run_block(workspace, setup.lang or "", setup.text, setup.attrs)
        if outcome is None and (setup.lang or "").lower() in PYTHON_LANGS:
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
        if setup is None or (setup.lang or "").lower() not in PYTHON_LANGS:
            return []
        if self.tool_for(workspace, "python", None) is not None:
            return []
        from domarkx.tools.setup_script import load_setup_tools

        base = resource_path(self.store.home, workspace.resources[0].id)
        workdir = base / "work" if (base / "work").is_dir() else base
        tools = load_setup_tools(
            setup.text, workdir=workdir, path=snapshot.source or "<document>", line=setup.start + 2
        )
        return [replace(t, call=_in_directory(workdir, t.call)) for t in tools]

    def execute_document(self, instance: SessionInstance, workspace: Workspace, progress: Progress) -> None:
        """Run each assistant message's code blocks and tool calls in order (the offline path)."""
        for index, message in enumerate(instance.messages):
            if message.role != "assistant":
                continue
            blocks = convert.runnable(message)
            calls = message.tool_calls
            if not blocks and not calls:
                message.workspace_version = instance.head_version
                self.save_messages(instance, index, index + 1)
                continue
            outputs: list[BlockOutput] = []
            for block_index, block in blocks:
                progress(f"message {index}: running {block.lang} block")
                outcome = self.run_block(workspace, block.lang or "", block.text, block.attrs)
                if outcome is not None and not _silent(outcome.ok, outcome.output):
                    outputs.append(BlockOutput(block=block_index, ok=outcome.ok, text=outcome.text))
            for call in calls:
                progress(f"message {index}: calling {call.name}")
                self.workspaces.call(workspace, call.name, call.arguments)
            message.outputs = outputs
            instance.head_version = self.workspaces.commit(workspace).id
            message.workspace_version = instance.head_version
            self.save_messages(instance, index, index + 1)

    def run_block(self, workspace: Workspace, lang: str, code: str, attrs: dict[str, str]) -> Any:
        """Execute one code block in the resource that speaks its language; None if none does."""
        target = self.tool_for(workspace, lang.lower(), attrs.get("resource"))
        if target is None:
            return None
        tool, argument = target
        return self.workspaces.call(workspace, tool, {argument: code})

    def tool_for(self, workspace: Workspace, lang: str, resource: str | None) -> tuple[str, str] | None:
        """The (tool name, argument) that runs code of ``lang``, preferring a named resource."""
        tools = {t.name for t in self.workspaces.tools(workspace)}
        several = len(workspace.resources) > 1
        wanted: list[tuple[str, str]] = []
        if lang in PYTHON_LANGS:
            wanted = [("execute_python", "code")]
        elif lang in SQL_LANGS:
            wanted = [("execute", "sql")]
        if lang in SHELL_LANGS:
            wanted = [("run_command", "command")]
        for res in workspace.resources:
            if resource is not None and res.name != resource:
                continue
            for tool, argument in wanted:
                name = f"{res.name}__{tool}" if several else tool
                if name in tools:
                    return name, argument
        if resource is not None:
            names = ", ".join(r.name for r in workspace.resources)
            raise UsageError(f"no resource {resource!r} runs {lang} code", hint=f"resources: {names}")
        return None

    def exec(self, ref: str, command: str, *, resource: str | None = None) -> Any:
        """Run a shell command out of band (``domarkx exec``) and commit the result as the head."""
        with self.using(self.get(ref)) as instance:
            if instance.status != "running":
                raise UsageError("the instance is stopped", hint="start it with `domarkx instances start`")
            workspace = self.workspaces.open(instance.workspace_id)
            target = self.tool_for(workspace, "bash", resource)
            if target is None:
                raise UsageError("the instance has no shell resource", hint="add a local_shell resource")
            outcome = self.workspaces.call(workspace, target[0], {target[1]: command})
            instance.head_version = self.workspaces.commit(workspace).id
            self.save_messages(instance, len(instance.messages))
        return outcome

    # -- time travel -----------------------------------------------------------

    def fork(self, ref: str, at: int, *, name: str | None = None) -> SessionInstance:
        """A new instance with messages 0..``at`` and the workspace as it was then."""
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
                self._insert(fork, self.initial_version(source))
            except BaseException:
                self.workspaces.destroy(workspace)
                raise
        return fork

    def version_at(self, instance: SessionInstance, at: int) -> str:
        """The workspace version linked at or before message ``at`` (else the initial one)."""
        for message in reversed(instance.messages[: at + 1]):
            if message.workspace_version and self.workspaces.has_version(message.workspace_version):
                return message.workspace_version
        return self.initial_version(instance)

    def initial_version(self, instance: SessionInstance) -> str:
        row = self.store.db.execute("SELECT initial_version FROM instances WHERE id = ?", (instance.id,)).fetchone()
        if row and row[0]:
            return str(row[0])
        raise DomarkxError("the instance has no recorded initial workspace version", hint="run `domarkx doctor`")

    # -- export and commit ----------------------------------------------------

    def export(self, ref: str, *, at: int | None = None) -> str:
        """The instance as Markdown that ``domarkx import`` takes back losslessly."""
        from domarkx.parsing.markdown import line_offsets
        from domarkx.parsing.render import edit_raw, join_messages, render_message, with_format_marker

        instance = self.get(ref)
        snapshot = self.snapshots.get(instance.snapshot_id)
        messages = instance.messages if at is None else instance.messages[: at + 1]
        offsets = line_offsets(snapshot.document)
        preamble = with_format_marker(snapshot.document[: offsets[snapshot.preamble_end]])
        parts = [edit_raw(m) if m.raw is not None else render_message(m) for m in messages]
        return join_messages(preamble, parts)

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

    def history(self, ref: str) -> list[dict[str, Any]]:
        """One entry per message for ``domarkx log``.

        Only the fields a summary needs are read, by SQLite's JSON functions:
        building every message object made ``log`` the slowest-growing command.
        """
        instance_id = self.resolve(ref)
        rows = self.store.db.execute(
            "SELECT idx, json_extract(body, '$.role'), json_extract(body, '$.content'),"
            " json_extract(body, '$.tool_calls'), json_extract(body, '$.tool_ok'),"
            " json_extract(body, '$.code[0].lang'), json_extract(body, '$.code[0].text'),"
            " json_extract(body, '$.workspace_version')"
            " FROM messages WHERE instance_id = ? ORDER BY idx",
            (instance_id,),
        )
        return [
            {
                "index": index,
                "role": role,
                "summary": _summary(role, content, json.loads(calls) if calls else [], bool(ok), lang, code),
                "workspace_version": version,
            }
            for index, role, content, calls, ok, lang, code, version in rows
        ]


def lock_name(instance_id: str) -> str:
    """The name of an instance's lock (:meth:`Store.hold`)."""
    return f"instance-{instance_id}"


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


def _silent(ok: bool, output: Any) -> bool:
    """A command that succeeded and printed nothing gets no output block, as in a notebook."""
    if not ok or not isinstance(output, dict) or "exit_code" not in output:
        return False
    return not output.get("stdout") and not output.get("stderr") and output["exit_code"] == 0


def resolve_instance(store: Store, ref: str) -> str:
    """An instance id from a name, a full id or a unique id prefix (≥ 4 hex)."""
    row = store.db.execute("SELECT id FROM instances WHERE name = ?", (ref,)).fetchone()
    if row:
        return str(row[0])
    return store.resolve(ref, "instances", what="instance", id_prefix="")


def resolve_any(store: Store, ref: str) -> tuple[str, str]:
    """(``"instance"`` or ``"snapshot"``, id) for a REF that may name either."""
    found: list[tuple[str, str]] = []
    for kind, resolver in (
        ("instance", lambda r: resolve_instance(store, r)),
        ("snapshot", store.resolve),
    ):
        try:
            found.append((kind, resolver(ref)))
        except ReferenceNotFound:
            continue
    if not found:
        raise ReferenceNotFound(
            f"no instance or snapshot matches {ref!r}",
            hint="see `domarkx instances ls` and `domarkx snapshots ls`",
        )
    if len(found) > 1:
        raise AmbiguousReference(
            f"{ref!r} names both an instance and a snapshot",
            hint="give more characters of the id, or use a name or tag",
        )
    return found[0]


def _summary(
    role: str,
    content: str,
    calls: list[dict[str, Any]],
    tool_ok: bool,
    code_lang: str | None,
    code_text: str | None,
    width: int = 72,
) -> str:
    if calls:
        shown = ", ".join(
            f"{c['name']}({json.dumps(c['arguments'], ensure_ascii=False, sort_keys=True)})" for c in calls
        )
        text = f"{content} → {shown}" if content else f"→ {shown}"
    elif role == "tool":
        text = ("" if tool_ok else "error: ") + content
    else:
        text = content
        if not text and code_text is not None:
            text = f"[{code_lang or 'code'}] {code_text}"
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"
