"""``bench/bench_docker.py`` still runs to the end on a real engine (no timing is looked at)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from real_engine import Engine

pytestmark = pytest.mark.docker

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_docker.py"


def test_bench_reports_every_figure(engine: Engine) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DOMARKX_HOME"}
    done = subprocess.run(
        [sys.executable, str(BENCH), "--size-mb", "2", "--repeat", "1", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    baselines = {r["baseline"] for r in rows}
    assert {"docker commit of a small change", "docker run of the version image"} <= baselines
    assert all(r["median_s"] > 0 for r in rows)
