"""Concurrency: eight ``domarkx`` processes at once against one ``DOMARKX_HOME``.

Each worker imports (a document all share, and its own), runs an offline
document that writes a file named after the worker, talks to the instance
through the replay provider, exports it and lists its workspace, round after
round, while a ninth process runs ``doctor --repair`` and ``prune`` over and
over. Nobody may see "database is locked", no message may be lost or land in
another instance, every workspace holds only its own files, and the repairs
must never take another process's work in progress for a leftover.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

WORKERS = 8
ROUNDS = 2
SCRIPT = Path(sys.executable).parent / "domarkx"
DOMARKX = str(SCRIPT) if SCRIPT.exists() else (shutil.which("domarkx") or "domarkx")

SHARED = """\
---
title: shared by every worker
---

## user

> the same document, imported by everyone at once

## assistant

> one snapshot
"""


def own_document(worker: int, round_: int) -> str:
    return f"""\
---
title: worker {worker} round {round_}
---

## user

> worker {worker} round {round_}: make your file

## assistant

```bash
echo {worker}-{round_} > own-{worker}.txt
```
"""


@dataclass
class Made:
    worker: int
    round: int
    instance: str
    snapshots: set[str]


HANG = 1800
"""Seconds after which a command counts as hung. Not a limit on how long work may take: under a
loaded machine nine processes on two cores took minutes, and a tighter per-command limit (it was
120 s) made the test fail for the machine's load rather than for anything domarkx did."""


def domarkx(*args: str) -> str:
    done = subprocess.run([DOMARKX, *args], capture_output=True, text=True, timeout=HANG, check=False)
    assert "locked" not in done.stderr.lower(), done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert done.returncode == 0, f"domarkx {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done.stdout


def work(worker: int, tmp: Path) -> list[Made]:
    """One worker's rounds; every check of its own results is made here, as it goes."""
    made: list[Made] = []
    shared = tmp / "shared.md"
    for round_ in range(ROUNDS):
        snapshots = {domarkx("import", str(shared), "-q").strip()}
        doc = tmp / f"w{worker}r{round_}.md"
        doc.write_text(own_document(worker, round_), encoding="utf-8")
        snapshots.add(domarkx("import", str(doc), "-q").strip())
        instance = domarkx("run", str(doc), "-q", "--name", f"w{worker}r{round_}").strip()
        said = f"hello from worker {worker} round {round_}"
        domarkx("send", instance, said, "-q", "--model", "replay:")
        exported = domarkx("export", instance)
        assert f"You said: {said}" in exported and f"worker {worker} round {round_}: make" in exported
        assert exported.count("hello from worker") == 2  # the question and its echo, nobody else's
        assert domarkx("exec", instance, "--", "ls").split() == [f"own-{worker}.txt"]
        assert domarkx("exec", instance, "--", f"cat own-{worker}.txt").strip() == f"{worker}-{round_}"
        made.append(Made(worker, round_, instance, snapshots))
    return made


def janitor(stop: threading.Event, reports: list[dict[str, object]]) -> None:
    """Repairs and prunes while the workers run: it must find nothing to repair that is someone's work."""
    while not stop.is_set():
        reports.append(json.loads(domarkx("doctor", "--repair", "--json")))
        domarkx("prune")


def test_eight_processes_share_one_home(tmp_path: Path) -> None:
    (tmp_path / "shared.md").write_text(SHARED, encoding="utf-8")
    stop = threading.Event()
    reports: list[dict[str, object]] = []
    with ThreadPoolExecutor(WORKERS + 1) as pool:
        cleaning = pool.submit(janitor, stop, reports)
        futures = [pool.submit(work, worker, tmp_path) for worker in range(WORKERS)]
        try:
            made = [m for future in futures for m in future.result()]
        finally:
            stop.set()
        cleaning.result()

    assert reports, "the janitor never ran"
    assert all(r["problems"] == [] and r["repaired"] == [] and r["leftovers"] == [] for r in reports), reports

    snapshots = {s for m in made for s in m.snapshots}
    assert len(snapshots) == 1 + WORKERS * ROUNDS  # the shared one, once, and one per worker and round
    listed = json.loads(domarkx("snapshots", "ls", "--json"))
    assert {s["id"] for s in listed} == snapshots

    instances = json.loads(domarkx("instances", "ls", "--json"))
    assert sorted(i["name"] for i in instances) == sorted(f"w{m.worker}r{m.round}" for m in made)
    assert all(i["messages"] == 4 for i in instances)  # user, assistant, and the one exchange

    final = json.loads(domarkx("doctor", "--json"))
    assert final["ok"] and final["leftovers"] == [] and final["notes"] == [], final


def test_one_instance_is_worked_on_by_one_process_at_a_time(tmp_path: Path) -> None:
    """Sends racing on one instance: each is stored whole or told the instance is busy, none is lost."""
    doc = tmp_path / "doc.md"
    doc.write_text(own_document(0, 0), encoding="utf-8")
    instance = domarkx("run", str(doc), "-q")
    racers = [
        subprocess.Popen(
            [DOMARKX, "send", instance.strip(), f"racer {n}", "-q", "--model", "replay:"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WORKERS)
    ]
    outcomes = [(racer.wait(timeout=HANG), racer.communicate()[1]) for racer in racers]
    won = [n for n, (code, _err) in enumerate(outcomes) if code == 0]
    assert won, outcomes
    for code, err in outcomes:
        assert code == 0 or (code == 1 and "is busy: another domarkx is working on it" in err), err

    log = json.loads(domarkx("log", instance.strip(), "--json"))
    said = [e["summary"] for e in log[2:]]
    assert sorted(said[0::2]) == sorted(f"racer {n}" for n in won)  # every stored question…
    assert [s.removeprefix("You said: ") for s in said[1::2]] == said[0::2]  # …right before its own answer
