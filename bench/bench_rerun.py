"""Re-running an edited document with the build cache, as a ratio to running it in full.

    python bench/bench_rerun.py [--messages 50] [--seconds 0.25] [--repeat 3]

A document of ``--messages`` assistant messages, each a ``bash`` block that
works for ``--seconds`` (``sleep``) and appends a line to a file, so the full
run takes ``messages × seconds`` plus domarkx's own cost (≥ 10 s with the
defaults). Its last message is then edited. Timed, as whole ``domarkx run``
processes in one home, interleaved:

* ``full run``: the edited document with ``--no-cache`` (every message executes);
* ``re-run after editing the last message``: the edited document, after the
  original ran once (untimed) and filled the cache: the first
  ``messages - 1`` messages are reused, the workspace is loaded at the
  version before the last, and only the last message executes.

Each side's last message must print the edited marker, so both provably ran it.
Target: re-run ≤ 0.1× the full run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console_script, interleaved, median, print_rows, row

TARGET = 0.1
MARKER = "bench-rerun-edited"


def document(messages: int, seconds: float, *, edited: bool) -> str:
    parts = ["---\ntitle: rerun benchmark\n---\n", "## user\n\n> build it\n"]
    for n in range(messages):
        last = n == messages - 1
        line = f"echo {MARKER}" if last and edited else f"echo step {n}"
        parts.append(f"## assistant\n\n```bash\nsleep {seconds}; {line} | tee -a log.txt\n```\n")
    return "\n".join(parts)


def measure(messages: int, seconds: float, repeat: int) -> dict[str, float]:
    script = console_script()
    with tempfile.TemporaryDirectory(prefix="domarkx-bench-rerun-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "DOMARKX_HOME": str(folder / "home")}
        original, edited = folder / "original.md", folder / "edited.md"
        original.write_text(document(messages, seconds, edited=False))
        edited.write_text(document(messages, seconds, edited=True))

        def run(path: Path, *args: str) -> None:
            done = subprocess.run([*script, "run", str(path), *args], env=env, capture_output=True, text=True)
            if done.returncode != 0 or MARKER not in done.stdout:
                raise RuntimeError(f"domarkx run failed or did not run the edited message: {done.stderr[-2000:]}")

        def rerun() -> None:
            run(edited)

        subprocess.run([*script, "run", str(original), "-q"], env=env, check=True, capture_output=True)
        times = interleaved({"full": lambda: run(edited, "--no-cache"), "rerun": rerun}, repeat)
        return {name: median(values) for name, values in times.items()}


def figures(quick: bool = False) -> dict[str, Any]:
    messages, seconds, repeat = (20, 0.05, 1) if quick else (50, 0.25, 3)
    found = measure(messages, seconds, repeat)
    full = f"full run ({messages} messages)"
    return {
        "area": "Re-run with the build cache",
        "rows": [
            row(full, found["full"]),
            row(
                f"re-run after editing the last of {messages} messages",
                found["rerun"],
                baseline=full,
                baseline_s=found["full"],
                max_ratio=TARGET,
            ),
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=0.25, help="work per message (sleep)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    found = measure(args.messages, args.seconds, args.repeat)
    rows = [
        row("full run", found["full"]),
        row("re-run after editing the last message", found["rerun"], baseline="full run",
            baseline_s=found["full"], max_ratio=TARGET),
    ]  # fmt: skip
    if args.json:
        print(json.dumps({"rows": rows}))
    else:
        print_rows(f"re-run of {args.messages} messages with the build cache", rows)


if __name__ == "__main__":
    main()
