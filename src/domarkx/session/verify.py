"""``domarkx verify``: re-run a recorded session offline and check it, message by message.

The record is a document: the file given, a snapshot's document, or an
instance's export (which carries outputs, tool results and each assistant
message's workspace version). It is imported into a throwaway instance with
the same workspace configuration; after setup, each assistant message's code
blocks and recorded tool calls run again in the sandbox (never from the build
cache), while the model's replies are taken from the record as they are.

After each message three things are compared with the record:

* each code block's output (the ``output`` block after it; none when it printed nothing),
* each tool call's result (the ``tool`` message answering it),
* the workspace: equal version ids pass at once (versions are content
  addressed); otherwise each resource's plugin diffs the two versions
  (:mod:`domarkx.workspace.compare`), and only a change it shows (or a pair
  it cannot compare) is a divergence. A recorded version this store does not
  hold cannot be diffed: a different id is then a divergence without details.

The first divergent message ends the check. With ``twice`` each message runs
twice from the same version; what differs between the two runs is
nondeterministic, and a divergence confined to it is reported as such instead.

What a re-run cannot guarantee is listed per step (the capture manifest):
calls to resources domarkx cannot restore are *replayed* from the record, not
called; calls to tools no resource offers keep their recorded result; failures
whose output names a network error ran without the network the record had.
What is never checked is said in :data:`NOT_CHECKED` (and :data:`SETUP_NOT_CHECKED` when there is a setup block).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from domarkx import ids
from domarkx.errors import UsageError
from domarkx.session import convert
from domarkx.session.execute import MessageRun, Observer, Runner, RunOptions, StepResult
from domarkx.workspace.compare import compare, render

if TYPE_CHECKING:
    from collections.abc import Callable

    from domarkx.data.models import ConversationMessage, SessionSnapshot
    from domarkx.session.instance import InstanceManager
    from domarkx.workspace.compare import ResourceComparison

Status = Literal["match", "diverged", "nondeterministic", "unchecked"]

NOT_CHECKED = [
    "the model's replies: they are taken from the record, never asked again",
    "time and randomness: a step reading the clock (through the vDSO, which cannot be traced) or random numbers"
    " can differ between runs; only --twice finds such steps, and only if they differ between its two runs",
    "anything outside the workspace's resources: the network, services, the host's files",
    "processes a step left running in the background",
]
SETUP_NOT_CHECKED = "the setup block: it runs again, but nothing of it is recorded to compare"
NETWORK_ERRORS = (
    "Network is unreachable",
    "Temporary failure in name resolution",
    "Could not resolve host",
    "Name or service not known",
    "No address associated with hostname",
)
"""How libc, curl and Python word a refused or unresolvable network, as the sandbox makes them fail."""
DETAIL_CHARS = 20_000


@dataclass(frozen=True)
class Check:
    """One comparison with the record."""

    message: int
    what: str
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class Capture:
    """What a re-run could not guarantee about one step (or one message's workspace)."""

    message: int
    step: str
    caveats: list[str]


@dataclass
class Verification:
    """The outcome of ``verify``."""

    source: str
    messages: int
    """Assistant messages in the record."""
    checks: list[Check] = field(default_factory=list)
    capture: list[Capture] = field(default_factory=list)
    rerun: int = 0
    """Assistant messages re-run before the check ended."""
    not_checked: list[str] = field(default_factory=lambda: list(NOT_CHECKED))
    """What no re-run of this record can check, for the report (only what applies to it)."""

    @property
    def ok(self) -> bool:
        return all(c.status != "diverged" for c in self.checks)

    @property
    def divergence(self) -> Check | None:
        return next((c for c in self.checks if c.status == "diverged"), None)

    def summary(self) -> str:
        """One line: how far the re-run got and how the checks came out."""
        counts = {s: sum(1 for c in self.checks if c.status == s) for s in ("match", "nondeterministic", "unchecked")}
        line = (
            f"re-ran {self.rerun} of {self.messages} assistant messages: {counts['match']} checks matched,"
            f" {counts['nondeterministic']} nondeterministic, {counts['unchecked']} not checkable"
        )
        if self.checks and not counts["match"] and self.ok:
            line += " (nothing recorded to compare: run the session and verify its export)"
        return line

    def as_json(self) -> dict[str, Any]:
        first = self.divergence
        return {
            "ok": self.ok,
            "source": self.source,
            "messages": self.messages,
            "rerun": self.rerun,
            "summary": self.summary(),
            "first_divergence": asdict(first) if first else None,
            "checks": [asdict(c) for c in self.checks],
            "capture": [asdict(c) for c in self.capture],
            "not_checked": self.not_checked,
        }


def verify(
    instances: InstanceManager, snapshot: SessionSnapshot, source: str, *, twice: bool = False, observer: Observer
) -> Verification:
    """Re-run ``snapshot``'s conversation in a throwaway instance and compare it with its record."""
    record = convert.from_snapshot(snapshot)
    existed = instances.store.snapshots.exists(snapshot.id)
    instances.snapshots.save(snapshot)
    instance = instances.create(snapshot, execute=False)
    try:
        with instances.using(instance):
            workspace = instances.workspaces.open(instance.workspace_id)
            options = RunOptions(cache=False, keep_going=True, replay_unrestorable=True, observer=observer)
            runner = Runner(instances, instance, workspace, options)
            result = _check_all(runner, record, source, twice)
        if snapshot.setup is not None:
            result.not_checked.insert(1, SETUP_NOT_CHECKED)
        return result
    finally:
        instances.remove(instance.id, force=True)
        if not existed:
            instances.snapshots.remove(snapshot.id)


def record_of(instances: InstanceManager, ref: str) -> tuple[SessionSnapshot, str]:
    """The record ``verify`` checks: a document's path, or a snapshot or instance (its export); and a label."""
    from domarkx.session.snapshot import read_source

    if Path(ref).is_file() or ref == "-":
        data, path, base_dir = read_source(ref)
        return instances.snapshots.build(data, path=path, base_dir=base_dir), path
    if ref.endswith((".md", ".markdown")) or "/" in ref:
        raise UsageError(f"no such file: {ref}", hint="give a document's path, a snapshot or an instance")
    kind, found = instances.store.resolve_any(ref)
    text = instances.export(found) if kind == "instance" else instances.snapshots.document(found)
    label = f"{kind} {ids.short(found)}"
    return instances.snapshots.build(text.encode("utf-8"), path=label, base_dir=Path.cwd()), label


def _check_all(runner: Runner, record: list[ConversationMessage], source: str, twice: bool) -> Verification:
    indices = [i for i, m in enumerate(record) if m.role == "assistant"]
    result = Verification(source, len(indices))
    noise: set[tuple[str, str]] = set()
    """What differed between two runs of a message so far: later messages inherit it."""
    for index in indices:
        first = runner.run_message(index)
        second = _again(runner, first) if twice else None
        unstable = set[tuple[str, str]]()
        if second is not None and second.version != first.version:
            unstable = _changed(compare(runner.workspaces, first.version or "", second.version or ""))
            noise |= unstable
        result.rerun += 1
        result.checks += _checks(runner, record, first, second, noise)
        result.capture += _capture(runner, first, second, unstable)
        if not result.ok:
            break
    return result


def _again(runner: Runner, first: MessageRun) -> MessageRun:
    """Run the message once more from the same version; go on from the first run's version."""
    runner.version = first.parent
    second = runner.run_message(first.index)
    runner.version = first.version or first.parent
    return second


# -- comparing one message -------------------------------------------------------------


def _checks(
    runner: Runner,
    record: list[ConversationMessage],
    run: MessageRun,
    second: MessageRun | None,
    noise: set[tuple[str, str]],
) -> list[Check]:
    message = record[run.index]
    outputs = _recorded_outputs(message)
    recorded_run = message.workspace_version is not None or bool(outputs)
    checks: list[Check] = []
    for position, result in enumerate(run.results):
        again = second.results[position] if second else None
        if result.origin in ("recorded", "replayed"):
            continue  # the record itself: listed in the capture manifest
        if result.step.kind == "block":
            what = f"output of block {result.step.index} ({result.step.label})"
            if not recorded_run:
                checks.append(Check(run.index, what, "unchecked", "the record has no run of this message"))
                continue
            recorded = outputs.get(result.step.index)
        else:
            what = f"result of call {result.step.call_id} ({result.step.label})"
            found = _answer(record, run.index, result.step.call_id)
            if found is None:
                checks.append(Check(run.index, what, "unchecked", "the record has no result for this call"))
                continue
            recorded = (found.tool_ok, found.content)
        checks.append(_compare_output(run.index, what, recorded, result, again))
    checks.append(_workspace(runner, message.workspace_version, run, noise))
    return checks


def _recorded_outputs(message: ConversationMessage) -> dict[int, tuple[bool, str]]:
    """Block index → (ok, text) of the ``output`` block the record has after it."""
    found: dict[int, tuple[bool, str]] = {}
    for index, block in enumerate(message.code[:-1]):
        following = message.code[index + 1]
        if "output" not in block.flags and "output" in following.flags:
            found[index] = ("error" not in following.flags, following.text)
    return found


def _answer(record: list[ConversationMessage], index: int, call_id: str | None) -> ConversationMessage | None:
    for message in record[index + 1 :]:
        if message.role != "tool":
            return None
        if message.tool_call_id == call_id:
            return message
    return None


def _shown(result: StepResult) -> tuple[bool, str] | None:
    return None if result.silent else (result.ok, result.text)


def _compare_output(
    index: int, what: str, recorded: tuple[bool, str] | None, result: StepResult, again: StepResult | None
) -> Check:
    new = _shown(result)
    if _same(recorded, new):
        return Check(index, what, "match")
    detail = _text_diff(recorded, new)
    if again is not None and not _same(_shown(again), new):
        return Check(index, what, "nondeterministic", detail)
    return Check(index, what, "diverged", detail)


def _same(a: tuple[bool, str] | None, b: tuple[bool, str] | None) -> bool:
    """Equal outputs; a fence adds the final newline a text lacks, so that one newline does not count."""
    if a is None or b is None:
        return a is b
    return a[0] == b[0] and a[1].rstrip("\n") == b[1].rstrip("\n")


def _text_diff(recorded: tuple[bool, str] | None, new: tuple[bool, str] | None) -> str:
    def lines(value: tuple[bool, str] | None) -> list[str]:
        if value is None:
            return []
        text = value[1] if value[1].endswith("\n") else value[1] + "\n"
        return ([] if value[0] else ["[failed]\n"]) + text.splitlines(keepends=True)

    patch = "".join(difflib.unified_diff(lines(recorded), lines(new), "recorded", "re-run"))
    return patch[:DETAIL_CHARS]


def _workspace(runner: Runner, recorded: str | None, run: MessageRun, noise: set[tuple[str, str]]) -> Check:
    """The re-run's workspace against the recorded one; a difference only where runs differed is nondeterministic."""
    what = "workspace"
    new = run.version or ""
    if recorded is None:
        return Check(run.index, what, "unchecked", "the record links no workspace version to this message")
    if recorded == new:
        return Check(run.index, what, "match", ids.short(new))
    workspaces = runner.workspaces
    if not workspaces.has_version(recorded):
        detail = (
            f"the re-run made {ids.short(new)}, the record names {ids.short(recorded)}, which this store does"
            " not hold, so the difference cannot be shown (verify where it was recorded, or --twice to see"
            " whether the re-run itself is reproducible)"
        )
        return _nondeterministic_or(run.index, what, detail, bool(noise))
    skip = _unrestorable(runner)
    differing = [c for c in compare(workspaces, recorded, new) if _shows(c) and c.name not in skip]
    if not differing:
        return Check(run.index, what, "match", "same content (the versions differ in nothing the plugins compare)")
    detail = render(differing, limit=DETAIL_CHARS)
    return _nondeterministic_or(run.index, what, detail, _changed(differing) <= noise)


def _nondeterministic_or(index: int, what: str, detail: str, unstable: bool) -> Check:
    return Check(index, what, "nondeterministic" if unstable else "diverged", detail)


def _shows(item: ResourceComparison) -> bool:
    return item.changed and bool(item.diff.changes or item.diff.notes)


def _changed(comparisons: list[ResourceComparison]) -> set[tuple[str, str]]:
    """(resource, what) for every change shown, and (resource, "") for one its plugin cannot show."""
    found = {(c.name, ch.name) for c in comparisons for ch in c.diff.changes}
    return found | {(c.name, "") for c in comparisons if c.diff.notes and not c.diff.changes}


def _unrestorable(runner: Runner) -> set[str]:
    return {r.name for r in runner.workspace.resources if not runner.workspaces.plugin(r.type).restorable}


# -- the capture manifest --------------------------------------------------------------


def _capture(
    runner: Runner, run: MessageRun, second: MessageRun | None, unstable: set[tuple[str, str]]
) -> list[Capture]:
    found: list[Capture] = []
    for position, result in enumerate(run.results):
        caveats = _caveats(runner, result, second.results[position] if second else None)
        if caveats:
            step = result.step
            label = (
                f"block {step.index} ({step.label})" if step.kind == "block" else f"call {step.call_id} ({step.label})"
            )
            found.append(Capture(run.index, label, caveats))
    if second is not None and second.version != run.version:
        shown = ", ".join(f"{r}:{n}" if n else r for r, n in sorted(unstable)[:10]) or "in what no plugin shows"
        found.append(Capture(run.index, "workspace", [f"differed between two re-runs: {shown}"]))
    return found


def _caveats(runner: Runner, result: StepResult, again: StepResult | None) -> list[str]:
    caveats: list[str] = []
    if result.origin == "replayed":
        resource = runner.routes[result.step.tool]
        caveats.append(
            f"resource {resource.name} ({resource.type}) cannot be restored:"
            " its recorded result was replayed, not re-run"
        )
    elif result.origin == "recorded":
        caveats.append("no resource offers this tool (a setup-script tool?): not re-run, its recorded result kept")
    network = next((e for e in NETWORK_ERRORS if e in result.text), None) if result.failure else None
    if network is not None:
        caveats.append(
            f"failed on denied network access ({network!r}): the sandbox has no network,"
            " so this step could not do again what it did with one"
        )
    if again is not None and not _same(_shown(again), _shown(result)):
        caveats.append("its result differed between two re-runs (nondeterministic)")
    return caveats


def report_lines(result: Verification, *, emit: Callable[[str], None]) -> None:
    """The human report: a line per message, the first divergence with its diff, the manifest, what is not checked."""
    by_message: dict[int, list[Check]] = {}
    for check in result.checks:
        by_message.setdefault(check.message, []).append(check)
    for index, checks in by_message.items():
        worst = next(
            (s for s in ("diverged", "nondeterministic", "unchecked") if any(c.status == s for c in checks)), "match"
        )
        mark = {"match": "✓", "nondeterministic": "~", "unchecked": "?", "diverged": "✗"}[worst]
        notes = [f"{c.what}: {c.status}" for c in checks if c.status != "match"]
        emit(f"{mark} message {index}" + (f"  ({'; '.join(notes)})" if notes else ""))
        for check in checks:
            if check.status in ("diverged", "nondeterministic") and check.detail:
                emit("".join(f"    {line}" for line in check.detail.splitlines(keepends=True)).rstrip("\n"))
    emit(result.summary())
    if result.capture:
        emit("what the re-run cannot guarantee:")
        for capture in result.capture:
            emit(f"  message {capture.message}, {capture.step}: {'; '.join(capture.caveats)}")
    emit("not checked:")
    for item in result.not_checked:
        emit(f"  - {item}")
