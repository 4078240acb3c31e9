"""What the benches share: timing, the console script, plain git, generated work trees, result rows.

Every bench compares domarkx with a baseline measured in the same run, on the
same data, interleaved so that drift (a busy neighbour, a warming cache) hits
both sides alike. A bench module exposes ``figures(quick=False) -> dict`` with
an ``area`` name and a list of ``rows`` made by :func:`row`; ``bench/run.py``
turns them into ``bench/RESULTS.md``.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}
"""Plain git for baselines: a fixed identity and no user or system configuration."""

Row = dict[str, Any]


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def interleaved(actions: Mapping[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Each action ``repeat`` times, in rounds (one of each per round), after one untimed warm-up round."""
    for action in actions.values():
        action()
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeat):
        for name, action in actions.items():
            times[name].append(timed(action))
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def console_script() -> list[str]:
    """The ``domarkx`` installed beside this interpreter (not a version manager's shim, which adds its own start-up)."""
    beside = Path(sys.executable).parent / "domarkx"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("domarkx")
    if found is None:
        raise SystemExit("domarkx is not installed in this environment (pip install -e .)")
    return [found]


def git(root: Path, *args: str) -> str:
    """Run plain git in ``root`` (the baseline side) and return its output."""
    done = subprocess.run(
        ["git", *args], cwd=root, env={**os.environ, **GIT_ENV}, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def git_repository(root: Path) -> None:
    """Make ``root`` a git repository with everything in it committed, as a person would."""
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")


def populate(root: Path, count: int) -> None:
    """``count`` small Python files, 100 per directory: a source tree of a realistic shape."""
    for i in range(count):
        folder = root / f"pkg{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"module_{i:05d}.py").write_text(
            f'"""Module {i}."""\n\n' + "".join(f"VALUE_{j} = {i * j}\n" for j in range(12))
        )


def row(
    figure: str,
    median_s: float,
    *,
    baseline: str | None = None,
    baseline_s: float | None = None,
    max_ratio: float | None = None,
    max_s: float | None = None,
) -> Row:
    """One line of a results table; the verdict is computed here, never written by hand.

    ``max_ratio`` is a target on ``median_s / baseline_s``, ``max_s`` one on the
    median itself; a row with neither is reported for information.
    """
    ratio = median_s / baseline_s if baseline_s else None
    target, passed = "", None
    if max_ratio is not None and ratio is not None:
        target, passed = f"≤ {max_ratio:g}×", ratio <= max_ratio
    elif max_s is not None:
        target, passed = f"< {format_seconds(max_s)}", median_s < max_s
    return {
        "figure": figure,
        "median_s": median_s,
        "baseline": baseline,
        "baseline_s": baseline_s,
        "ratio": ratio,
        "target": target,
        "pass": passed,
    }


def format_seconds(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.01:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds * 1000:.2f} ms"


def print_rows(title: str, rows: Sequence[Row]) -> None:
    """The rows as a plain-text table, for a bench run on its own."""
    print(title)
    for item in rows:
        base = f"{item['baseline']} {format_seconds(item['baseline_s'])}" if item["baseline_s"] else ""
        ratio = f"{item['ratio']:.2f}×" if item["ratio"] is not None else ""
        verdict = {True: "ok", False: "OVER TARGET", None: ""}[item["pass"]]
        target = f"target {item['target']}" if item["target"] else ""
        print(f"  {item['figure']:48} {format_seconds(item['median_s']):>9}  {ratio:>7}  {base}  {target} {verdict}")


def slope(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """The least-squares slope of log(time) against log(size): 1 is linear, 2 quadratic."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(max(t, 1e-9)) for t in seconds]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
