"""Running a conversation's assistant messages offline, like a notebook runner, with a build cache.

``domarkx run`` executes each assistant message's *steps* in order: its code
blocks (each as a call of the tool its resource runs code with, see
:attr:`Plugin.code`) and then its recorded tool calls. After the last step the
workspace is committed and the message is linked to that version.

*Failures.* A step fails when its tool call fails or when the plugin reads its
result as failed code (:meth:`Plugin.failure`: ``exit 1``, ``ZeroDivisionError``).
By default the run stops there, as papermill does: the workspace as the failed
step left it is committed as the instance's head, and the message stays
unlinked. ``keep_going`` runs every step anyway.

*Resume.* A message is linked to a version only once all of its steps ran, so
the first assistant message without one is where a stopped or killed run
resumes (:func:`resume`), from the version linked before it. Versions an
imported document names are claims, not this store's work: a fresh run drops
them before it starts.

*Build cache.* Before running a message, its key is looked up in the store's
table of executions it performed (:mod:`domarkx.data.build_cache`): the digest
of the version the message starts from, the steps it executes (tool names and
arguments, so a text edit keeps the key), the workspace configuration and each
plugin's :attr:`Plugin.plugin_version`. A hit links the version that execution
made and reuses its results without running anything; the workspace is loaded
only where a message must really run, or at the end. Only complete executions
without failures are recorded, and none that reached a resource domarkx cannot
restore (its effects live outside the version).

*Recorded tool results.* A tool call that ran again is compared with the
result the conversation recorded; a result that differs (edited, forged or
merely stale) is replaced by what the call returned now and reported, as code
block outputs are.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from domarkx import ids
from domarkx.data.build_cache import CacheEntry
from domarkx.data.models import BlockOutput, ConversationMessage, SessionInstance
from domarkx.errors import UsageError
from domarkx.session import convert
from domarkx.workspace.plugin import streaming_to

if TYPE_CHECKING:
    from domarkx.session.instance import InstanceManager
    from domarkx.workspace.manager import Workspace
    from domarkx.workspace.plugin import Resource

CACHE_FORMAT = 1
"""Part of every cache key: bump it when what a key covers changes."""

Origin = Literal["ran", "cached", "recorded", "replayed"]


@dataclass(frozen=True)
class Step:
    """One thing a message executes: a code block (as its resource's code tool) or a recorded tool call."""

    kind: Literal["block", "call"]
    index: int
    """The block's index in ``message.code``, or the call's in ``message.tool_calls``."""
    label: str
    """The block's language, or the called tool's name."""
    tool: str
    arguments: dict[str, Any]
    call_id: str | None = None
    problem: str | None = None
    """Why the step cannot run at all (a block naming a resource that runs no such code)."""


@dataclass(frozen=True)
class StepResult:
    """What one step gave: run now, reused from the cache, or taken from the record."""

    step: Step
    ok: bool
    text: str
    failure: str | None = None
    """Why the step counts as failed (``exit 1``, ``ZeroDivisionError``); None if it did not."""
    silent: bool = False
    """It succeeded and printed nothing: no output block, as in a notebook."""
    origin: Origin = "ran"
    """``recorded``: no resource offers the tool, the record's result is kept; ``replayed``: the
    resource cannot be restored, so verify replays the record instead of calling it."""

    def stored(self) -> dict[str, Any]:
        return {"ok": self.ok, "text": self.text, "failure": self.failure, "silent": self.silent}


@dataclass(frozen=True)
class MessageRun:
    """One assistant message of a run."""

    index: int
    parent: str
    """The workspace version it started from."""
    version: str | None
    """The version it is linked to; None when the run stopped inside it."""
    results: list[StepResult]
    cached: bool = False
    notes: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    """Ids of the tool calls whose recorded results differed and were replaced."""


@dataclass
class Report:
    """What a run did, message by message."""

    instance: str
    messages: list[MessageRun] = field(default_factory=list)
    stopped: int | None = None
    """The message the run stopped in at a failure."""
    unreached: int = 0
    """Steps not run because the run stopped."""

    @property
    def failures(self) -> list[tuple[int, StepResult]]:
        return [(run.index, r) for run in self.messages for r in run.results if r.failure]

    @property
    def steps(self) -> int:
        return sum(len(run.results) for run in self.messages) + self.unreached

    def summary(self) -> str | None:
        """``2 of 5 blocks failed: message 3 (bash, exit 1), …``; None when nothing failed."""
        failed = self.failures
        if not failed:
            return None
        shown = ", ".join(f"message {index} ({r.step.label}, {r.failure})" for index, r in failed)
        text = f"{len(failed)} of {self.steps} blocks failed: {shown}"
        if self.stopped is not None and self.unreached:
            text += f"; stopped there, {self.unreached} not run"
        return text


class Observer:
    """What a run tells whoever watches it (the CLI prints, verify compares); every hook is a no-op here."""

    def step(self, index: int, step: Step, origin: Origin) -> None:
        """A step of message ``index`` is about to run (or is reused)."""

    def output(self, chunk: str) -> None:
        """Output of the running step, as it comes."""

    def result(self, index: int, result: StepResult) -> None:
        """A step finished."""

    def message(self, run: MessageRun) -> None:
        """A message finished (or the run stopped in it)."""

    def finished(self, report: Report) -> None:
        """The run is over (also when it stopped at a failure)."""

    def interrupted(self, instance: str, index: int) -> None:
        """Ctrl-C (or a signal) stopped the run in message ``index``; what ran is kept, the rest can be resumed."""


class Progress(Observer):
    """The quiet default: one progress line per step, as ``InstanceManager.create`` always reported."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self.sink = sink

    def step(self, index: int, step: Step, origin: Origin) -> None:
        what = f"{step.label} block" if step.kind == "block" else f"calling {step.label}"
        verb = "running " if step.kind == "block" else ""
        self.sink(f"message {index}: {'reusing ' if origin == 'cached' else verb}{what}")


@dataclass(frozen=True)
class RunOptions:
    """How to run: stop at failures or not, use the build cache or not, who watches."""

    keep_going: bool = False
    cache: bool = True
    replay_unrestorable: bool = False
    """Replay recorded results of calls to resources that cannot be restored instead of calling them."""
    observer: Observer = field(default_factory=Observer)


class Runner:
    """Runs messages of one instance in its workspace, keeping track of where the workspace really is.

    ``version`` is the workspace version the next message starts from;
    ``at`` is the one the workspace holds (they differ after cache hits,
    until a message must really run, which loads ``version`` first).
    """

    def __init__(
        self, instances: InstanceManager, instance: SessionInstance, workspace: Workspace, options: RunOptions
    ) -> None:
        self.instances = instances
        self.workspaces = instances.workspaces
        self.store = instances.store
        self.instance = instance
        self.workspace = workspace
        self.options = options
        self.version = instance.head_version or self.workspaces.current_version(workspace).id
        self.at: str | None = self.store.workspaces.current_version(workspace.id)
        self.routes = _routes(instances, workspace)
        self.unsaved: tuple[int, int] | None = None
        """Messages ``[low, high)`` changed in memory but not stored yet (see :meth:`save`)."""
        self.context = {
            "config": json.loads(self.store.workspaces.config(workspace.id)),
            "plugins": {r.type: self.workspaces.plugin(r.type).plugin_version for r in workspace.resources},
        }

    # -- a whole run -------------------------------------------------------------

    def run_from(self, start: int) -> Report:
        """Run every assistant message from ``start`` on; stop at the first failure unless told to keep going."""
        report = Report(self.instance.id)
        with self.store.provisioning():  # no prune while versions from the cache are being linked
            indices = [i for i, m in enumerate(self.instance.messages) if m.role == "assistant" and i >= start]
            for position, index in enumerate(indices):
                try:
                    run = self.run_message(index)
                except KeyboardInterrupt:
                    self.options.observer.interrupted(self.instance.id, index)
                    raise
                report.messages.append(run)
                if run.version is None:
                    report.stopped = index
                    later = indices[position + 1 :]
                    report.unreached = len(self.plan(self.instance.messages[index])) - len(run.results)
                    report.unreached += sum(len(self.plan(self.instance.messages[i])) for i in later)
                    break
            else:
                self.settle()
        self.options.observer.finished(report)
        return report

    # -- one message -------------------------------------------------------------

    def plan(self, message: ConversationMessage) -> list[Step]:
        """The steps of an assistant message: its runnable code blocks, then its recorded tool calls."""
        steps: list[Step] = []
        for index, block in convert.runnable(message):
            lang = block.lang or ""
            try:
                target = self.workspaces.code_runner(self.workspace, lang, block.attrs.get("resource"))
            except UsageError as exc:
                steps.append(Step("block", index, lang, "", {}, problem=exc.message))
                continue
            if target is not None:
                steps.append(Step("block", index, lang, target[0], {target[1]: block.text}))
        for index, call in enumerate(message.tool_calls):
            steps.append(Step("call", index, call.name, call.name, call.arguments, call_id=call.id))
        return steps

    def key(self, steps: list[Step]) -> str | None:
        """The build-cache key of running ``steps`` from :attr:`version`; None if they cannot be keyed."""
        value = {
            "build-cache": CACHE_FORMAT,
            "parent": self.version,
            "steps": [[s.kind, s.tool, s.arguments] for s in steps],
            **self.context,
        }
        try:
            return ids.digest_json(value)
        except (UnicodeEncodeError, ValueError, TypeError):
            return None  # not canonical JSON (a lone surrogate in an argument): never cached

    def run_message(self, index: int) -> MessageRun:
        """Run (or reuse) assistant message ``index`` from :attr:`version`; record it in the instance."""
        message = self.instance.messages[index]
        steps = self.plan(message)
        if not steps:
            return self._finish(MessageRun(index, self.version, self.version, []))
        key = self.key(steps) if self.options.cache else None
        entry = self.store.build_cache.get(key) if key else None
        if entry is not None:
            results = [StepResult(s, origin="cached", **stored) for s, stored in zip(steps, entry.steps, strict=True)]
            for result in results:
                self.options.observer.step(index, result.step, "cached")
                self.options.observer.result(index, result)
            return self._finish(MessageRun(index, self.version, entry.result, results, cached=True))
        return self._execute(index, steps)

    def _execute(self, index: int, steps: list[Step]) -> MessageRun:
        self.save()
        self.load(self.version)
        parent, results = self.version, list[StepResult]()
        with self._keeping_what_ran(index, results):
            for step in steps:
                results.append(self._step(index, step))
                if results[-1].failure and not self.options.keep_going:
                    break
        version = self.workspaces.commit(self.workspace)
        self.at = version.id
        complete = len(results) == len(steps)
        cacheable = complete and all(r.origin == "ran" and not r.failure for r in results)
        cacheable = cacheable and self._restorable(steps)
        run = MessageRun(index, parent, version.id if complete else None, results, notes=version.notes)
        if cacheable:
            key = self.key(steps)
            if key is not None:
                self.store.build_cache.put(CacheEntry(key, parent, version.id, [r.stored() for r in results]))
        return self._finish(run)

    def _step(self, index: int, step: Step) -> StepResult:
        observer = self.options.observer
        if step.problem is not None:
            observer.step(index, step, "ran")
            return self._report(index, StepResult(step, False, f"error: {step.problem}", step.problem))
        resource = self.routes.get(step.tool)
        replay = resource is not None and self.options.replay_unrestorable and not self._plugin(resource).restorable
        if resource is None or replay:
            origin: Origin = "replayed" if replay else "recorded"
            observer.step(index, step, origin)
            ok, text = self._recorded(index, step)
            return self._report(index, StepResult(step, ok, text, origin=origin))
        observer.step(index, step, "ran")
        with streaming_to(observer.output):
            outcome = self.workspaces.call(self.workspace, step.tool, step.arguments)
        failure = self._plugin(resource).failure(outcome.output) if outcome.ok else _first_line(outcome.text)
        silent = outcome.ok and _silent(outcome.output)
        return self._report(index, StepResult(step, outcome.ok, outcome.text, failure, silent))

    def _report(self, index: int, result: StepResult) -> StepResult:
        self.options.observer.result(index, result)
        return result

    @contextlib.contextmanager
    def _keeping_what_ran(self, index: int, results: list[StepResult]) -> Iterator[None]:
        """On an interrupt, commit what the steps did and keep their outputs (the message stays unlinked)."""
        try:
            yield
        except BaseException:
            self.at = self.workspaces.commit(self.workspace).id
            self._record(index, MessageRun(index, self.version, None, results))
            raise

    def _finish(self, run: MessageRun) -> MessageRun:
        """Record the message's results and link; a complete message moves :attr:`version` on."""
        run = replace(run, replaced=self._record(run.index, run))
        if run.version is not None:
            self.version = run.version
        self.options.observer.message(run)
        return run

    def _record(self, index: int, run: MessageRun) -> list[str]:
        """Put outputs, replaced tool results and the link into the conversation and store them."""
        messages = self.instance.messages
        message = messages[index]
        if run.results:
            message.outputs = [
                BlockOutput(block=r.step.index, ok=r.ok, text=r.text)
                for r in run.results
                if r.step.kind == "block" and not r.silent
            ]
        message.workspace_version = run.version
        replaced: list[str] = []
        last = index
        for result in run.results:
            found = _result_message(messages, index, result.step.call_id) if result.origin != "recorded" else None
            if found is not None and not _same(messages[found], result):
                messages[found] = messages[found].model_copy(
                    update={"content": result.text, "tool_ok": result.ok, "raw": None}
                )
                replaced.append(result.step.call_id or "")
                last = max(last, found)
        low, high = self.unsaved or (index, last + 1)
        self.unsaved = (min(low, index), max(high, last + 1))
        if not run.cached:
            self.save()
        return replaced

    def save(self) -> None:
        """Store the messages changed since the last save, and the head, in one transaction.

        Reused messages are stored together when a message must run (or at the
        end): one write for a cached prefix instead of one per message. A run
        killed before that loses only links that the next run reuses again.
        """
        if self.unsaved is None:
            return
        self.instance.head_version = self.at
        self.instances.save_messages(self.instance, *self.unsaved)
        self.unsaved = None

    # -- the workspace -----------------------------------------------------------

    def load(self, version: str) -> None:
        """Bring the workspace to ``version`` unless it is there already."""
        if self.at != version:
            self.workspaces.load(self.workspace, version)
            self.at = version

    def settle(self) -> None:
        """Leave the workspace where the conversation is (after cache hits) and make it the head."""
        self.load(self.version)
        self.unsaved = self.unsaved or (len(self.instance.messages), len(self.instance.messages))
        self.save()

    def _plugin(self, resource: Resource) -> Any:
        return self.workspaces.plugin(resource.type)

    def _restorable(self, steps: list[Step]) -> bool:
        return all(self._plugin(self.routes[s.tool]).restorable for s in steps if s.tool in self.routes)

    def _recorded(self, index: int, step: Step) -> tuple[bool, str]:
        """The result the conversation recorded for a tool call ((True, "") when there is none)."""
        found = _result_message(self.instance.messages, index, step.call_id)
        if found is None:
            return True, ""
        message = self.instance.messages[found]
        return message.tool_ok, message.content


# -- whole runs ----------------------------------------------------------------------


def run_document(
    instances: InstanceManager, instance: SessionInstance, workspace: Workspace, options: RunOptions
) -> Report:
    """A fresh instance's offline run: every assistant message from the first, claimed versions dropped."""
    claimed = [i for i, m in enumerate(instance.messages) if m.role == "assistant" and m.workspace_version]
    for index in claimed:
        instance.messages[index].workspace_version = None
    if claimed:
        instances.save_messages(instance, claimed[0], claimed[-1] + 1)
    return Runner(instances, instance, workspace, options).run_from(0)


def resume(instances: InstanceManager, ref: str, options: RunOptions) -> Report:
    """Run what a stopped or killed run left: from the first unlinked assistant message on."""
    with instances.using(instances.get(ref)) as instance:
        if instance.status != "running":
            raise UsageError("the instance is stopped", hint="start it with `domarkx instances start`")
        start = first_unlinked(instance)
        if start is None:
            return Report(instance.id)
        workspace = instances.workspaces.open(instance.workspace_id)
        instance.head_version = instances.version_before(instance.id, start)
        runner = Runner(instances, instance, workspace, options)
        runner.at = None  # a killed step may have left changes no version holds: always load
        return runner.run_from(start)


def first_unlinked(instance: SessionInstance) -> int | None:
    """The first assistant message not linked to a version: where a run resumes."""
    return next((i for i, m in enumerate(instance.messages) if m.role == "assistant" and not m.workspace_version), None)


# -- helpers -------------------------------------------------------------------------


def _routes(instances: InstanceManager, workspace: Workspace) -> dict[str, Resource]:
    """Tool name (as the model calls it) → the resource that offers it."""
    workspaces = instances.workspaces
    return {
        workspaces.tool_name(workspace, resource, spec.name): resource
        for resource in workspace.resources
        for spec in workspaces.plugin(resource.type).list_tools(resource.id)
    }


def _result_message(messages: list[ConversationMessage], index: int, call_id: str | None) -> int | None:
    """The tool message right after message ``index`` that answers ``call_id``."""
    if call_id is None:
        return None
    for position in range(index + 1, len(messages)):
        if messages[position].role != "tool":
            return None
        if messages[position].tool_call_id == call_id:
            return position
    return None


def _same(recorded: ConversationMessage, result: StepResult) -> bool:
    """A recorded tool result equals a new one (a fence drops one final newline, so trailing ones don't count)."""
    return recorded.tool_ok == result.ok and recorded.content.rstrip("\n") == result.text.rstrip("\n")


def _silent(output: Any) -> bool:
    """A command that succeeded and printed nothing gets no output block, as in a notebook."""
    if not isinstance(output, dict) or "exit_code" not in output:
        return False
    return not output.get("stdout") and not output.get("stderr") and output["exit_code"] == 0


def _first_line(text: str) -> str:
    line = (text.strip().splitlines() or [""])[0].removeprefix("error: ")
    return line if len(line) <= 80 else line[:79] + "…"
