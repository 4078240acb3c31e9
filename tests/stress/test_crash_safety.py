"""Crash safety: SIGKILL ``domarkx`` at random moments, then prove nothing reported was lost.

The real console script is started again and again against one ``DOMARKX_HOME``
— ``import`` (some documents large enough that the kill lands mid-write),
``run`` (offline documents with several bash blocks, so kills land mid-commit;
``run -m`` through the replay provider or the fake OpenAI server, so kills land
mid-turn), ``send``, ``exec`` and ``commit`` — and killed with its whole process
group after a random delay spread over the command's measured duration.

Whatever a command reported (exit 0, an id printed) must be there afterwards,
intact: snapshots export byte for byte, instances keep every message they had,
workspaces hold the files their documents made, and ``domarkx doctor`` finds
nothing but leftovers that ``--repair`` and ``prune`` remove.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fake_openai import FakeOpenAI, calls, text

SCRIPT = Path(sys.executable).parent / "domarkx"
DOMARKX = str(SCRIPT) if SCRIPT.exists() else (shutil.which("domarkx") or "domarkx")
WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "ember",
    "lantern",
    "meadow",
    "quartz",
    "violet",
    "willow",
    "harbor",
    "sage",
]

REPLAY_SCRIPT = """\
- content: Counting first.
  tool_calls:
    - name: run_command
      arguments: {command: "seq 1 20000 > counted.txt && wc -l counted.txt"}
- tool_calls:
    - name: write_file
      arguments: {path: notes/summary.txt, content: "counted to twenty thousand\\n"}
- content: "Done, counted.txt and notes/summary.txt."
"""

# (kind, weight): how often each command is started.
KINDS = [
    ("import", 18),
    ("import-large", 6),
    ("run", 24),
    ("run-replay", 14),
    ("run-openai", 5),
    ("send", 12),
    ("exec", 8),
    ("commit", 13),
]


@dataclass
class Outcome:
    killed: bool
    code: int
    out: str
    err: str


@dataclass
class Reported:
    """What the killed commands said they had created, and what it must still hold."""

    snapshots: dict[str, bytes | None] = field(default_factory=dict)
    """snapshot id → the document it was imported from (None: made by ``commit``)."""
    instances: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """instance id → its log when a command last reported on it."""
    markers: dict[str, str] = field(default_factory=dict)
    """instance id → the text its offline run wrote to a.txt."""


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def chat_document(rng: random.Random, lines: int) -> str:
    """A conversation with a unique title; ``lines`` lines of text in a no-exec block make it large."""
    parts = [f"---\ntitle: chat {rng.getrandbits(64):016x}\n---\n"]
    for _ in range(rng.randint(1, 4)):
        parts.append(f"## user\n\n> {words(rng, rng.randint(3, 30))}\n")
        parts.append(f"## assistant\n\n{words(rng, rng.randint(5, 60))}\n")
    if lines:
        body = "\n".join(words(rng, 12) for _ in range(lines))
        parts.append(f"## user\n\n```text no-exec\n{body}\n```\n")
    return "\n".join(parts)


def offline_document(marker: str) -> str:
    """Three assistant messages with bash blocks: every message is a workspace commit."""
    return f"""\
---
title: offline {marker}
---

## user

> start

## assistant

```bash
echo {marker} > a.txt
seq 1 30000 > numbers.txt
```

## user

> go on

## assistant

```bash
mkdir -p sub/deeper && cp a.txt sub/deeper/copy.txt
for i in $(seq 1 40); do echo "$i {marker}" > sub/f$i.txt; done
```

## user

> finish

## assistant

```bash
rm sub/f1.txt && cat a.txt
```
"""


class Campaign:
    """Starts commands, kills them at random, and records what the survivors reported."""

    def __init__(self, tmp: Path, rng: random.Random, server: FakeOpenAI) -> None:
        self.tmp, self.rng, self.server = tmp, rng, server
        self.reported = Reported()
        self.typical: dict[str, float] = {}
        self.started: dict[str, int] = {}
        self.kills = 0
        self.script = tmp / "script.yaml"
        self.script.write_text(REPLAY_SCRIPT, encoding="utf-8")
        self.serial = 0

    # -- one command ---------------------------------------------------------------

    def step(self, cli: Callable[..., Any]) -> None:
        kind = self.rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        if kind in ("send", "exec", "commit") and not self.reported.markers:
            kind = "run"
        args, on_success = self.prepare(kind, cli)
        self.started[kind] = self.started.get(kind, 0) + 1
        if self.started[kind] <= 2:  # measure: the first two run to the end, the second warm
            began = time.monotonic()
            outcome = self.spawn(args, None)
            self.typical[kind] = time.monotonic() - began
        else:
            outcome = self.spawn(args, self.rng.uniform(0.0, 1.3) * self.typical[kind])
        if outcome.killed:
            self.kills += 1
            return
        assert outcome.code == 0, f"{args} failed on its own:\n{outcome.err}"
        on_success((outcome.out.strip().splitlines() or [""])[-1])

    def spawn(self, args: list[str], kill_after: float | None) -> Outcome:
        proc = subprocess.Popen(
            [DOMARKX, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # so the kill takes its children (bash, git) with it
        )
        try:
            out, err = proc.communicate(timeout=kill_after if kill_after is not None else 120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return Outcome(True, -9, "", "")
        return Outcome(False, proc.returncode, out, err)

    def prepare(self, kind: str, cli: Callable[..., Any]) -> tuple[list[str], Callable[[str], None]]:
        self.serial += 1
        if kind.startswith("import"):
            return self.prepare_import(kind == "import-large")
        if kind.startswith("run"):
            return self.prepare_run(kind, cli)
        instance = self.rng.choice(sorted(self.reported.markers))
        if kind == "send":
            args = ["send", instance, f"message {self.serial}", "-q", "--model", "replay:"]
        elif kind == "exec":
            args = ["exec", instance, "--", f"echo {self.serial} >> exec-log.txt"]
        else:
            args = ["commit", instance]

        def done(last_line: str) -> None:
            self.reported.instances[instance] = log(cli, instance)
            if kind == "commit":
                assert last_line.startswith("sha256:"), last_line
                self.reported.snapshots[last_line] = None

        return args, done

    def prepare_import(self, large: bool) -> tuple[list[str], Callable[[str], None]]:
        data = chat_document(self.rng, self.rng.randint(20_000, 40_000) if large else 0).encode()
        path = self.tmp / f"doc{self.serial}.md"
        path.write_bytes(data)

        def done(snapshot_id: str) -> None:
            assert snapshot_id.startswith("sha256:"), snapshot_id
            self.reported.snapshots[snapshot_id] = data

        return ["import", str(path), "-q"], done

    def prepare_run(self, kind: str, cli: Callable[..., Any]) -> tuple[list[str], Callable[[str], None]]:
        marker = f"m{self.serial}"
        path = self.tmp / f"run{self.serial}.md"
        path.write_text(offline_document(marker), encoding="utf-8")
        args = ["run", str(path), "-q"]
        if kind == "run-replay":
            args += ["-m", "count please", "--model", f"replay:{self.script}"]
        elif kind == "run-openai":
            while len(self.server.replies) < 4:  # killed turns leave replies behind; any order is a valid turn
                self.server.queue(calls(("write_file", {"path": "ai.txt", "content": marker})), text("Wrote it."))
            args += ["-m", "write a file", "--model", "openai:fake-model"]

        def done(instance: str) -> None:
            self.reported.instances[instance] = log(cli, instance)
            self.reported.markers[instance] = marker

        return args, done


def log(cli: Callable[..., Any], instance: str) -> list[dict[str, Any]]:
    result = cli("log", instance, "--json")
    assert result.code == 0, result
    entries: list[dict[str, Any]] = json.loads(result.out)
    return entries


def doctor(cli: Callable[..., Any], *args: str) -> dict[str, Any]:
    result = cli("doctor", "--json", *args)
    assert result.out.startswith("{"), result
    report: dict[str, Any] = json.loads(result.out)
    assert result.code == (0 if report["ok"] else 1), result
    return report


def verify(cli: Callable[..., Any], reported: Reported) -> None:
    """Everything reported is there: snapshots byte for byte, instances with all their messages."""
    for snapshot_id, source in reported.snapshots.items():
        exported = cli("export", snapshot_id)
        assert exported.code == 0, exported
        if source is not None:
            assert exported.out.encode() == source, f"snapshot {snapshot_id} exports other bytes"
    for instance, before in reported.instances.items():
        now = log(cli, instance)
        assert now[: len(before)] == before, f"instance {instance} lost or changed messages"
        assert all(e["workspace_version"] for e in now[: len(before)] if e["role"] == "assistant")
        assert cli("export", instance).code == 0
    for instance, marker in sorted(reported.markers.items())[:6]:  # a sample: each costs a process tree
        files = cli("exec", instance, "--", "cat a.txt sub/deeper/copy.txt && ls sub | wc -l")
        assert files.code == 0, files
        assert files.out.split() == [marker, marker, "40"], f"instance {instance}: {files.out!r}"


def campaign(cli: Callable[..., Any], tmp_path: Path, server: FakeOpenAI, iterations: int, seed: int) -> str:
    """Run the commands, kill most of them, then check the store; returns a one-line account."""
    run = Campaign(tmp_path, random.Random(seed), server)
    for _ in range(iterations):
        run.step(cli)
    # What counts is what was verified below, not how many kills landed (that depends on the machine's load).
    assert run.reported.snapshots and run.reported.instances, "no command finished: there is nothing to verify"

    first = doctor(cli)
    assert first["problems"] == [], first
    verify(cli, run.reported)

    repaired = doctor(cli, "--repair")
    assert repaired["ok"] and repaired["problems"] == [] and repaired["leftovers"] == [], repaired
    again = doctor(cli)
    assert again["leftovers"] == [] and again["ok"], again

    assert cli("prune").code == 0
    clean = doctor(cli)
    assert clean["ok"] and clean["problems"] == [] and clean["leftovers"] == [] and clean["notes"] == [], clean
    verify(cli, run.reported)  # prune freed nothing that anything reported needs
    started = ", ".join(f"{kind} {n}" for kind, n in sorted(run.started.items()))
    typical = ", ".join(f"{kind} {t:.2f}s" for kind, t in sorted(run.typical.items()))
    return (
        f"{iterations} commands ({started}); {run.kills} killed; {len(first['leftovers'])} leftover(s)"
        f" repaired; {len(run.reported.snapshots)} snapshots and {len(run.reported.instances)} instances"
        f" verified; uninterrupted durations: {typical}"
    )


def report(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str], line: str) -> None:
    if request.config.get_verbosity() > 0:
        with capsys.disabled():
            print(f"\n{request.node.name}: {line}")


def test_sigkill_at_random_points_loses_nothing_reported(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    report(request, capsys, campaign(cli, tmp_path, openai_env, iterations=150, seed=20240611))


@pytest.mark.slow
def test_sigkill_a_thousand_times(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, openai_env: FakeOpenAI, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    report(request, capsys, campaign(cli, tmp_path, openai_env, iterations=1200, seed=7))
