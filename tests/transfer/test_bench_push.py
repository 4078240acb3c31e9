"""bench/bench_push.py still runs to the end (it reaches into the transfer internals, so it rots first).

No timing is looked at: only that both rows come out, and that the second push's share of bytes is a number.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from registry_service import registry_binary
from test_real_plugins import _exports

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_push.py"


@pytest.mark.skipif(not _exports("local_shell"), reason="local_shell does not export versions yet (core lane)")
@pytest.mark.skipif(
    importlib.util.find_spec("oras") is None, reason="the bench's baseline needs oras: pip install -e '.[bench]'"
)
def test_bench_push_runs() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DOMARKX_HOME"} | {"DOMARKX_REGISTRY_BIN": registry_binary()}
    done = subprocess.run(
        [sys.executable, str(BENCH), "--files", "4300", "--repeat", "1", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    figures = [row["figure"] for row in result["rows"]]
    assert figures[0].startswith("push, 4,300-file workspace") and figures[1].startswith("second push after one change")
    assert 0 < result["rows"][1]["ratio"] < 1
