"""domarkx's own cost per turn, per instance creation and per fork, against baselines of the same run.

    python bench/bench_turn.py [--turns 30] [--repeat 9] [--files 1000] [--profile]

* turn: ``SessionManager.send`` of a turn in which the model calls
  ``write_file`` once and then answers: two model requests, one tool call, one
  workspace commit, four stored messages. The model is the OpenAI-compatible
  fake of ``tests/fake_openai.py``, streaming, run in a *separate process* that
  measures how long it spends handling each request (in-process, its thread
  would hold the GIL while the client parses, and its time would be
  overstated). Overhead = wall time of ``send`` - server time - time inside the
  plugin's ``execute_tool``: the provider's SDK and HTTP client, the turn loop,
  the git commit of the workspace, the store. Target < 50 ms. Also measured
  with an in-process provider that answers instantly, which leaves out the SDK.
* create: ``InstanceManager.create`` of a small document (a ``local_shell``
  with 20 files, three messages) against ``cp -a`` of the same files +
  ``git init`` + ``git add -A`` + ``git commit``: making a versioned directory
  by hand.
* fork: ``InstanceManager.fork`` of an instance whose workspace has
  ``--files`` files against ``git worktree add`` of the same tree (a new work
  tree of a stored version, which is what a fork's workspace is), and
  ``cp -a`` for reference. Target ≤ 2× ``git worktree add``.

``--profile`` prints where a turn's time goes (cProfile, cumulative).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import git, git_repository, interleaved, median, populate, print_rows, row, timed

from domarkx import trust
from domarkx.data.models import SessionInstance
from domarkx.data.store import Store
from domarkx.llm.base import ChatMessage, Completion, Provider, TextCallback, ToolCall, ToolDefinition
from domarkx.session.instance import InstanceManager
from domarkx.session.manager import SessionManager

TESTS = Path(__file__).resolve().parents[1] / "tests"
TURN_TARGET_S = 0.050
FORK_TARGET = 2.0
CREATE_FILES = 20

DOC = """\
---
title: turn benchmark
---

```workspace-config
{workspace}
```

## system

> You keep notes in files.

## user

> Start a notes file.

## assistant

> Done: notes.txt holds the first line.
"""


def document(files: dict[str, str] | None = None) -> bytes:
    """A small session document whose ``local_shell`` starts with ``files``."""
    resource: dict[str, Any] = {"type": "local_shell", "sandbox": "none"}
    if files:
        resource["files"] = files
    return DOC.format(workspace=json.dumps({"resources": [resource]})).encode()


def starting_files(count: int) -> dict[str, str]:
    return {f"src/module_{i:02d}.py": f'"""Module {i}."""\n\nVALUE = {i}\n' for i in range(count)}


# -- the model side --------------------------------------------------------------


class Instant(Provider):
    """A model that costs nothing: a ``write_file`` call after a user message, then a short answer."""

    name = "instant"

    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        *,
        on_text: TextCallback | None = None,
    ) -> Completion:
        if messages[-1].role == "user":
            turn = sum(m.role == "user" for m in messages)
            arguments = {"path": f"notes/{turn:04d}.txt", "content": f"note {turn}\n"}
            return Completion("", (ToolCall(f"call_{turn}", "write_file", arguments),), model="instant")
        return Completion("Noted.", model="instant", finish_reason="stop")


SERVER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from fake_openai import FakeOpenAI, calls, text

class Timed(FakeOpenAI):
    busy = 0.0
    def handle(self, handler):
        start = time.perf_counter()
        try:
            super().handle(handler)
        finally:
            self.busy += time.perf_counter() - start

with Timed() as server:
    for turn in range(int(sys.argv[2])):
        args = {"path": f"notes/{turn:04d}.txt", "content": f"note {turn}\\n"}
        server.queue(calls(("write_file", args), content="Writing it down."), text("Noted."))
    print(server.base_url, flush=True)
    for line in sys.stdin:
        print(repr(server.busy), flush=True)
"""


class ServerProcess:
    """The fake OpenAI server in a process of its own; ``busy()`` is the seconds it spent handling requests."""

    def __init__(self, replies: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(TESTS), str(replies)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()

    def busy(self) -> float:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("busy\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


def openai_provider(base_url: str) -> Provider:
    from domarkx.llm.openai_provider import OpenAIProvider

    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-key")
    return OpenAIProvider("fake-model", {"base_url": base_url, "max_retries": 0})


# -- measuring ---------------------------------------------------------------------


class Stopwatch:
    """Accumulated seconds inside a wrapped callable."""

    def __init__(self) -> None:
        self.total = 0.0

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - start

        return timed_call


@contextmanager
def bench_home() -> Iterator[InstanceManager]:
    """A throwaway home whose documents (ours: their ``sandbox: none`` is this bench's choice) count as trusted."""
    with (
        tempfile.TemporaryDirectory(prefix="domarkx-bench-") as home,
        Store(Path(home)) as store,
        trust.granted_for_this_command(),
    ):
        yield InstanceManager(store)


def new_instance(instances: InstanceManager, data: bytes, path: str = "bench.md") -> SessionInstance:
    snapshot = instances.snapshots.build(data, path=path, base_dir=instances.store.home)
    instances.snapshots.save(snapshot)
    return instances.create(snapshot)


def turns(provider: Provider, count: int, model_time: Callable[[], float], profile: bool) -> dict[str, list[float]]:
    """Per turn: wall, model server, tool, workspace-commit and SDK-transform seconds."""
    with bench_home() as instances, sdk_transform() as sdk:
        sessions = SessionManager(instances)
        instance = new_instance(instances, document())
        plugin = instances.workspaces.plugin("local_shell")
        tool, commit = Stopwatch(), Stopwatch()
        plugin.execute_tool = tool.wrap(plugin.execute_tool)
        plugin.commit_version = commit.wrap(plugin.commit_version)
        watches = {"tool": tool, "commit": commit, "sdk": sdk}
        out: dict[str, list[float]] = {"wall": [], "model": [], **{name: [] for name in watches}}
        profiler = cProfile.Profile() if profile else None
        for n in range(count):
            before = {name: watch.total for name, watch in watches.items()}
            model_before = model_time()
            if profiler is not None:
                profiler.enable()
            out["wall"].append(timed(lambda n=n: sessions.send(instance, f"note number {n}", provider)))
            if profiler is not None:
                profiler.disable()
            out["model"].append(model_time() - model_before)
            for name, watch in watches.items():
                out[name].append(watch.total - before[name])
        assert len(instance.messages) == 3 + 4 * count, "every turn adds user, call, result, answer"
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        return out


@contextmanager
def sdk_transform() -> Iterator[Stopwatch]:
    """Time the openai SDK's conversion of request parameters (its ``maybe_transform``), if it has one."""
    import importlib

    from openai.resources.chat import Completions

    module = importlib.import_module(Completions.__module__)
    watch = Stopwatch()
    original = getattr(module, "maybe_transform", None)
    if original is None:
        yield watch
        return
    module.maybe_transform = watch.wrap(original)
    try:
        yield watch
    finally:
        module.maybe_transform = original


def no_model_time() -> float:
    return 0.0


def overhead(times: dict[str, list[float]]) -> list[float]:
    return [w - m - t for w, m, t in zip(times["wall"], times["model"], times["tool"], strict=True)]


def turn_rows(count: int, profile: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    server = ServerProcess(count + 1)
    try:
        provider = openai_provider(server.base_url)
        turns(provider, 1, server.busy, False)  # warm-up: imports, the SDK client, the page cache
        http = turns(provider, count, server.busy, profile)
        provider.close()
    finally:
        server.close()
    instant = turns(Instant("instant"), count, no_model_time, False)
    rows = [
        row("turn overhead (openai provider, HTTP)", median(overhead(http)), max_s=TURN_TARGET_S),
        row("  of which: openai SDK parameter transform", median(http["sdk"])),
        row("  of which: workspace commit (git)", median(http["commit"])),
        row("  turns 1-3 (3-11 messages before the turn)", median(overhead(http)[:3])),
        row(
            f"  turns {count - 2}-{count} ({4 * count - 9}-{4 * count - 1} messages before)",
            median(overhead(http)[-3:]),
        ),
        row("turn overhead (in-process model)", median(overhead(instant)), max_s=TURN_TARGET_S),
        row("  of which: workspace commit (git)", median(instant["commit"])),
        row("turn wall time (openai provider, HTTP)", median(http["wall"])),
        row("  model server time in it", median(http["model"])),
        row("  tool (write_file) time in it", median(http["tool"])),
    ]
    details = {
        "turns": count,
        "http_medians_s": {name: median(values) for name, values in http.items()},
        "messages_at_end": 3 + 4 * count,
    }
    return rows, details


def create_rows(repeat: int) -> list[dict[str, Any]]:
    files = starting_files(CREATE_FILES)
    with bench_home() as instances, tempfile.TemporaryDirectory(prefix="domarkx-bench-") as tmp:
        template = Path(tmp) / "template"
        for rel, text in files.items():
            (template / rel).parent.mkdir(parents=True, exist_ok=True)
            (template / rel).write_text(text)
        snapshot = instances.snapshots.build(document(files), path="create.md", base_dir=Path(tmp))
        instances.snapshots.save(snapshot)
        copies = iter(range(10**6))

        def by_hand() -> None:
            target = Path(tmp) / f"copy{next(copies)}"
            subprocess.run(["cp", "-a", str(template), str(target)], check=True)
            git_repository(target)

        times = interleaved({"create": lambda: instances.create(snapshot), "baseline": by_hand}, repeat)
    return [
        row(
            f"instance creation ({CREATE_FILES} files, 3 messages)",
            median(times["create"]),
            baseline="cp -a + git init/add/commit",
            baseline_s=median(times["baseline"]),
        )
    ]


def fork_source(instances: InstanceManager, files: int) -> SessionInstance:
    """An instance whose latest message links a workspace version holding ``files`` files."""
    instance = new_instance(instances, document())
    populate(work_dir(instances, instance), files)
    SessionManager(instances).send(instance, "save the generated tree", Instant("instant"))
    return instance


def work_dir(instances: InstanceManager, instance: SessionInstance) -> Path:
    """The work tree of the instance's ``local_shell`` resource."""
    resource = instances.workspaces.open(instance.workspace_id).resources[0].id
    path: Path = instances.workspaces.plugin("local_shell").work_dir(resource)  # type: ignore[attr-defined]
    return path


def fork_rows(files: int, repeat: int) -> list[dict[str, Any]]:
    times = fork_times(files, repeat)
    return [
        row(
            f"fork ({files} files)",
            median(times["fork"]),
            baseline="git worktree add",
            baseline_s=median(times["git worktree add"]),
            max_ratio=FORK_TARGET,
        ),
        row(
            f"fork ({files} files) vs cp -a",
            median(times["fork"]),
            baseline="cp -a",
            baseline_s=median(times["cp -a"]),
        ),
    ]


def fork_times(files: int, repeat: int) -> dict[str, list[float]]:
    """Fork, ``git worktree add`` and ``cp -a`` of the same tree, interleaved."""
    with bench_home() as instances, tempfile.TemporaryDirectory(prefix="domarkx-bench-") as tmp:
        source = fork_source(instances, files)
        at = len(source.messages) - 1
        tree, plain = Path(tmp) / "tree", Path(tmp) / "plain"
        shutil.copytree(work_dir(instances, source), tree)
        shutil.copytree(tree, plain)
        git_repository(plain)
        names = iter(range(10**6))

        def fork() -> None:
            forked = instances.fork(source.id, at)
            assert forked.head_version == source.messages[at].workspace_version

        def worktree() -> None:
            git(plain, "worktree", "add", "-q", "--detach", str(Path(tmp) / f"tree{next(names)}"), "main")

        def copy() -> None:
            subprocess.run(["cp", "-a", str(tree), str(Path(tmp) / f"copy{next(names)}")], check=True)

        return interleaved({"fork": fork, "git worktree add": worktree, "cp -a": copy}, repeat)


def figures(
    quick: bool = False,
    *,
    turns_count: int | None = None,
    repeat: int | None = None,
    files: int | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """Turn overhead, creation and fork rows (``quick``: fewer turns and runs, a smaller tree)."""
    count = turns_count or (5 if quick else 30)
    runs = repeat or (3 if quick else 9)
    tree = files or (100 if quick else 1000)
    turn, details = turn_rows(count, profile)
    rows = turn + create_rows(runs) + fork_rows(tree, runs)
    return {"area": "Turns, instances and forks", "rows": rows, "details": {**details, "repeat": runs, "files": tree}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=30, help="turns measured (default 30, at least 20 for the report)")
    parser.add_argument("--repeat", type=int, default=9, help="runs of create and fork (default 9)")
    parser.add_argument("--files", type=int, default=1000, help="files in the forked workspace (default 1000)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the turns")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = figures(turns_count=args.turns, repeat=args.repeat, files=args.files, profile=args.profile)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_rows(result["area"], result["rows"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
