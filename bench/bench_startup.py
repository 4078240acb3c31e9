"""Start-up time: ``domarkx --version`` as a ratio to ``python -c pass``.

    python bench/bench_startup.py [--repeat 20]

Both run as subprocesses of the same interpreter's environment, interleaved, and
the medians are compared. The console script is the one installed beside this
interpreter (not a version-manager shim, which would add its own start-up). The
target is ≤ 5× bare Python.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 5.0


def console_script() -> list[str]:
    beside = Path(sys.executable).parent / "domarkx"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("domarkx")
    if found is None:
        raise SystemExit("domarkx is not installed in this environment (pip install -e .)")
    return [found]


def run_once(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat", type=int, default=20, help="runs of each command (default 20, at least 10)"
    )
    args = parser.parse_args(argv)
    repeat = max(10, args.repeat)

    bare = [sys.executable, "-c", "pass"]
    domarkx = [*console_script(), "--version"]
    run_once(bare)  # warm the page cache for both
    run_once(domarkx)
    bare_times, domarkx_times = [], []
    for _ in range(repeat):
        bare_times.append(run_once(bare))
        domarkx_times.append(run_once(domarkx))

    base, ours = statistics.median(bare_times), statistics.median(domarkx_times)
    ratio = ours / base
    print(f"{repeat} runs each, medians")
    print(f"{'python -c pass':24}{base * 1000:8.1f} ms")
    print(f"{'domarkx --version':24}{ours * 1000:8.1f} ms")
    print(f"ratio {ratio:.2f} (target ≤ {TARGET}: {'ok' if ratio <= TARGET else 'over target'})")
    result = {
        "bench": "startup",
        "repeat": repeat,
        "python_ms": round(base * 1000, 2),
        "domarkx_ms": round(ours * 1000, 2),
        "ratio": round(ratio, 3),
        "target": TARGET,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
