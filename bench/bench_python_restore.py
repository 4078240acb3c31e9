"""A python version is restored, not replayed: load and commit of a ~100 MB namespace.

    python bench/bench_python_restore.py [--repeat 3] [--json]

The namespace (a 50 MB ``bytearray``, a list of 1M floats, a dict of 100k
str → int, a small class instance referencing the list) is built by cells that
take over 5 s together (the slow part stands for a model fit: a sleep, so the
figure does not depend on this machine's arithmetic). Then, side by side:

* load: ``load_version`` of that version into a new resource (kernel start +
  unpickling in the kernel), against the old way, replaying the same cells in
  a new resource (kernel start + the cells' run time): target ≤ 0.2×;
* commit after a cell that changes one small variable: target < 100 ms and
  < 1 MB of new blobs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import row, timed

from domarkx import ids
from domarkx.data.store import Store
from domarkx.workspace.plugin import PluginContext, progress_to
from domarkx.workspace.plugins.python import PythonPlugin

CELLS = [
    "import random, time\nrandom.seed(1)\nbig = bytearray(random.randbytes(50_000_000))",
    "floats = [random.random() for _ in range(1_000_000)]",
    "table = {f'key{i}': i for i in range(100_000)}",
    "class Holder:\n    def __init__(self, data):\n        self.data = data\nholder = Holder(floats)",
    "time.sleep(5)  # the expensive part: a model fit, say\ncounter = 0",
]


def blob_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in (home / "blobs").rglob("*") if p.is_file())


def bench(plugin: PythonPlugin, home: Path, repeat: int) -> dict[str, Any]:
    source = plugin.create_resource({"timeout": 120}).id
    build = timed(lambda: [plugin.execute_tool(source, "execute_python", code=c) for c in CELLS])
    version = plugin.commit_version(source)
    with plugin.context.store.write():  # the same cells as a version of the replaying kind
        legacy = plugin.context.store.put_blob(ids.canonical_json([{"code": c, "ok": True} for c in CELLS]))
    commits, grown = [], []
    for _ in range(repeat):
        plugin.execute_tool(source, "execute_python", code="counter += 1")
        before = blob_bytes(home)
        commits.append(timed(lambda: plugin.commit_version(source)))
        grown.append(blob_bytes(home) - before)
    loads, replays = [], []
    for _ in range(repeat):
        for target, times in ((version, loads), (legacy, replays)):
            fresh = plugin.create_resource({"timeout": 120}).id
            times.append(timed(lambda f=fresh, t=target: plugin.load_version(f, t)))
            plugin.destroy_resource(fresh)
    check = plugin.create_resource({}).id
    plugin.load_version(check, version)
    probe = "len(big), len(floats), len(table), holder.data is floats"
    shape = plugin.execute_tool(check, "execute_python", code=probe)
    assert shape == "[result]\n(50000000, 1000000, 100000, True)", shape
    return {
        "build_s": build,
        "load_s": statistics.median(loads),
        "replay_s": statistics.median(replays),
        "commit_small_s": statistics.median(commits),
        "commit_small_bytes": max(grown),
    }


def measure(repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="domarkx-bench-") as home, progress_to(lambda _message: None):
        store = Store(Path(home))
        try:
            return bench(PythonPlugin(PluginContext(home=Path(home), store=store)), Path(home), repeat)
        finally:
            store.close()


def figures(quick: bool = False) -> dict[str, Any]:
    result = measure(1 if quick else 3)
    rows = [
        row(
            "python: load a ~100 MB namespace (restore)",
            result["load_s"],
            baseline="replay of its cells (≥ 5 s)",
            baseline_s=result["replay_s"],
            max_ratio=0.2,
        ),
        row("python: commit after one small change", result["commit_small_s"], max_s=0.1),
    ]
    return {"area": "Python restore", "rows": rows, "details": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = measure(args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"cells to build       {result['build_s']:8.2f} s")
    print(f"load (restore)       {result['load_s']:8.2f} s")
    print(f"replay of the cells  {result['replay_s']:8.2f} s")
    print(f"load / replay        {result['load_s'] / result['replay_s']:8.2f} ×   (target ≤ 0.2×)")
    print(f"commit, small change {result['commit_small_s'] * 1000:8.0f} ms  (target < 100 ms)")
    print(f"new blob bytes       {result['commit_small_bytes']:8d} B   (target < 1 MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
