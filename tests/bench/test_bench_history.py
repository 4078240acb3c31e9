"""bench_rerun and bench_diff still run end to end (no timing is looked at, only that each reports its rows)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run(*args: str) -> dict:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if k != "DOMARKX_HOME"}  # each bench makes its own home
    done = subprocess.run([sys.executable, *args, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    found: dict = json.loads(done.stdout)  # type: ignore[type-arg]
    return found


def test_rerun_bench_times_the_full_run_and_the_cached_one() -> None:
    result = run(str(BENCH / "bench_rerun.py"), "--messages", "3", "--seconds", "0", "--repeat", "1")
    assert [r["figure"] for r in result["rows"]] == ["full run", "re-run after editing the last message"]
    assert result["rows"][1]["baseline_s"] == result["rows"][0]["median_s"]


def test_diff_bench_compares_the_whole_command_with_git_diff() -> None:
    result = run(str(BENCH / "bench_diff.py"), "--files", "4300", "--repeat", "1")
    figures = [r["figure"] for r in result["rows"]]
    assert figures[0] == "domarkx diff, one change in 4,300 files"
    assert all(r["baseline"] == "git diff (4,300 files)" for r in result["rows"])
