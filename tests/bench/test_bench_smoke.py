"""The benchmark scripts still run (they reach into domarkx's internals, so they rot first).

Nothing here looks at a timing: only that each script runs to the end and
reports what it should.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DOMARKX_HOME"}  # each bench makes its own homes
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_run_quick_writes_a_report(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    done = run(str(BENCH / "run.py"), "--quick", "--only", "import", "--only", "startup", "--output", str(output))
    assert done.returncode == 0, done.stderr
    report = output.read_text()
    assert "## Machine" in report
    assert "| import (1 MB," in report
    assert "| domarkx --version |" in report
    assert "## Scaling" not in report  # --only left it out
    assert not (tmp_path / "scaling.png").exists()


def test_run_refuses_an_unknown_bench(tmp_path: Path) -> None:
    done = run(str(BENCH / "run.py"), "--only", "nonsense", "--output", str(tmp_path / "R.md"))
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
    assert not (tmp_path / "R.md").exists()


def test_turn_bench_measures_every_part_of_a_turn() -> None:
    done = run(str(BENCH / "bench_turn.py"), "--turns", "2", "--repeat", "1", "--files", "10", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    figures = [r["figure"] for r in result["rows"]]
    assert "turn overhead (openai provider, HTTP)" in figures
    assert "fork (10 files)" in figures
    assert set(result["details"]["http_medians_s"]) == {"wall", "model", "tool", "commit", "sdk"}
    assert result["details"]["messages_at_end"] == 11


def test_fork_bench_compares_with_cp() -> None:
    done = run(str(BENCH / "bench_fork.py"), "--sizes", "30", "--repeat", "1")
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout.splitlines()[-1])
    assert (result["figure"], result["baseline"]) == ("fork (30 files)", "cp -a")
    assert result["ratio"] > 0


def test_startup_bench_times_every_quick_command() -> None:
    done = run(str(BENCH / "bench_startup.py"), "--repeat", "1")
    assert done.returncode in (0, 1), done.stderr  # 1: a ratio over target, which a loaded machine may show
    result = json.loads(done.stdout.splitlines()[-1])
    assert set(result["ratios"]) == {
        "domarkx --version",
        "domarkx --help",
        "domarkx snapshots ls",
        "domarkx snapshots inspect",
        "domarkx instances ls",
        "domarkx instances inspect",
        "domarkx log",
    }
    assert result["interpreter"].endswith(("python", "python3", "python3.11", "python3.12", "python3.13"))


@pytest.mark.parametrize(("power", "expected"), [(1, 1.0), (2, 2.0), (0, 0.0)])
def test_growth_is_the_log_log_slope(power: int, expected: float) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from _common import slope
    finally:
        sys.path.remove(str(BENCH))
    sizes = [10, 100, 1000, 10_000]
    assert slope(sizes, [0.001 * n**power for n in sizes]) == pytest.approx(expected)
