"""Forking a ``local_shell`` instance, as a ratio to ``cp -a`` of the same work tree, at two sizes.

    python bench/bench_fork.py [--repeat 7]

An instance whose last message links a version of N small files (100 per
directory) is forked at that message with ``InstanceManager.fork`` — a new
instance row, a new workspace, the version checked out into it — against
``cp -a`` of a plain copy of the same work tree, interleaved, at 1,000 and
10,000 files. Targets: ≤ 1× ``cp -a`` at 10,000 files, and under 250 ms at
1,000 (the fixed cost of a fork: rows, a workspace, a handful of git runs).
Every round writes to a new destination (removing one would be timed too).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, median, print_rows, row
from bench_turn import bench_home, fork_source, work_dir

SIZES = (1_000, 10_000)
MAX_RATIO = 1.0
"""At 10,000 files: a fork writes every file once, as cp does, and nothing more."""
MAX_SMALL_S = 0.25


def measure(files: int, repeat: int) -> dict[str, float]:
    """Medians of fork and of ``cp -a`` on a work tree of ``files`` files."""
    with bench_home() as instances, tempfile.TemporaryDirectory(prefix="domarkx-bench-") as tmp:
        source = fork_source(instances, files)
        at = len(source.messages) - 1
        tree = Path(tmp) / "tree"
        shutil.copytree(work_dir(instances, source), tree, symlinks=True)
        names = iter(range(10**6))

        def fork() -> None:
            forked = instances.fork(source.id, at)
            assert forked.head_version == source.messages[at].workspace_version

        def copy() -> None:
            subprocess.run(["cp", "-a", str(tree), str(Path(tmp) / f"copy{next(names)}")], check=True)

        times = interleaved({"fork": fork, "cp -a": copy}, repeat)
        made = work_dir(instances, instances.get(instances.store.instances.listing()[0].id))
        assert sum(1 for _ in made.rglob("*.py")) == files
    return {name: median(values) for name, values in times.items()}


def fork_rows(sizes: tuple[int, ...], repeat: int) -> list[dict[str, Any]]:
    """A row per size; the target is a ratio at 10,000 files and more, a time below."""
    rows = []
    for files in sizes:
        medians = measure(files, repeat)
        limits: dict[str, float] = {"max_ratio": MAX_RATIO} if files >= 10_000 else {"max_s": MAX_SMALL_S}
        rows.append(
            row(f"fork ({files:,} files)", medians["fork"], baseline="cp -a", baseline_s=medians["cp -a"], **limits)
        )
    return rows


def figures(quick: bool = False) -> dict[str, Any]:
    return {"area": "Fork (local_shell)", "rows": fork_rows(SIZES, 3 if quick else 7), "details": {}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="rounds per size (default 7)")
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="comma-separated file counts (default 1000,10000)"
    )
    args = parser.parse_args(argv)
    rows = fork_rows(tuple(int(n) for n in args.sizes.split(",")), args.repeat)
    print_rows("Fork (local_shell), medians", rows)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
