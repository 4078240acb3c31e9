"""Start-up time: ``domarkx --version`` as a ratio to ``python -c pass``; the cost of keeping keys out of /proc.

    python bench/bench_startup.py [--repeat 20]

Both run as subprocesses of the same interpreter's environment, interleaved, and
the medians are compared. The console script is the one installed beside this
interpreter (not a version-manager shim, which would add its own start-up). The
target is ≤ 5× bare Python.

With a key variable set, a command that may start a document's code starts
domarkx a second time without the keys in its environment (``domarkx._keys``):
``domarkx run --help`` with and without ``OPENAI_API_KEY`` measures that second
start; the target is ≤ 2× (one more start of the same program).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console_script, interleaved, median, row

from domarkx import _keys

TARGET = 5.0
REEXEC_TARGET = 2.0


def measure(repeat: int) -> dict[str, Any]:
    """Medians of ``python -c pass`` and ``domarkx --version``, ``repeat`` (at least 10) runs each."""
    repeat = max(10, repeat)
    plain = {k: v for k, v in os.environ.items() if not _keys.is_key(k)}
    commands = {
        "python": ([sys.executable, "-c", "pass"], plain),
        "domarkx": ([*console_script(), "--version"], plain),
        "help": ([*console_script(), "run", "--help"], plain),
        "help_keyed": ([*console_script(), "run", "--help"], {**plain, "OPENAI_API_KEY": "sk-bench"}),
    }
    times = interleaved(
        {
            name: lambda c=command, e=env: subprocess.run(c, check=True, stdout=subprocess.DEVNULL, env=e)
            for name, (command, env) in commands.items()
        },
        repeat,
    )
    base, ours = median(times["python"]), median(times["domarkx"])
    help_s, keyed_s = median(times["help"]), median(times["help_keyed"])
    return {
        "bench": "startup",
        "repeat": repeat,
        "python_s": base,
        "domarkx_s": ours,
        "ratio": ours / base,
        "target": TARGET,
        "run_help_s": help_s,
        "run_help_keyed_s": keyed_s,
        "reexec_ratio": keyed_s / help_s,
        "reexec_target": REEXEC_TARGET,
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
        ),
        row(
            "domarkx run --help, a key set (started twice)",
            result["run_help_keyed_s"],
            baseline="domarkx run --help, no key",
            baseline_s=result["run_help_s"],
            max_ratio=REEXEC_TARGET,
        ),
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
    print(f"{'run --help, no key':24}{result['run_help_s'] * 1000:8.1f} ms")
    print(f"{'run --help, key set':24}{result['run_help_keyed_s'] * 1000:8.1f} ms")
    print(f"re-exec ratio {result['reexec_ratio']:.2f} (target ≤ {REEXEC_TARGET})")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
