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
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console_script, interleaved, median, row

TARGET = 5.0


def measure(repeat: int) -> dict[str, Any]:
    """Medians of ``python -c pass`` and ``domarkx --version``, ``repeat`` (at least 10) runs each."""
    repeat = max(10, repeat)
    commands = {"python": [sys.executable, "-c", "pass"], "domarkx": [*console_script(), "--version"]}
    times = interleaved(
        {
            name: lambda c=command: subprocess.run(c, check=True, stdout=subprocess.DEVNULL)
            for name, command in commands.items()
        },
        repeat,
    )
    base, ours = median(times["python"]), median(times["domarkx"])
    return {
        "bench": "startup",
        "repeat": repeat,
        "python_s": base,
        "domarkx_s": ours,
        "ratio": ours / base,
        "target": TARGET,
    }


def figures(quick: bool = False) -> dict[str, Any]:
    result = measure(10 if quick else 20)
    rows = [
        row(
            "domarkx --version",
            result["domarkx_s"],
            baseline="python -c pass",
            baseline_s=result["python_s"],
            max_ratio=TARGET,
        )
    ]
    return {"area": "Start-up", "rows": rows, "details": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="runs of each command (default 20, at least 10)")
    args = parser.parse_args(argv)
    result = measure(args.repeat)
    base, ours, ratio = result["python_s"], result["domarkx_s"], result["ratio"]
    print(f"{result['repeat']} runs each, medians")
    print(f"{'python -c pass':24}{base * 1000:8.1f} ms")
    print(f"{'domarkx --version':24}{ours * 1000:8.1f} ms")
    print(f"ratio {ratio:.2f} (target ≤ {TARGET}: {'ok' if ratio <= TARGET else 'over target'})")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
