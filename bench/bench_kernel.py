"""What a ``python`` resource costs: kernel start, and replaying a history on load.

    python bench/bench_kernel.py [--repeat 5] [--cells 50] [--json]

* start: create a resource and run its first cell (``execute_python("1")``),
  i.e. launching ipykernel and waiting for it, against ``python -c pass``;
* replay: ``load_version`` of a version with ``--cells`` small cells, which
  restarts the kernel and replays them (what a new ``domarkx`` process pays on
  its first call to a resource with that history).

Medians of ``--repeat`` runs, in a throw-away DOMARKX_HOME.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import row, timed

from domarkx.data.store import Store
from domarkx.workspace.plugin import PluginContext
from domarkx.workspace.plugins.python import PythonPlugin


def bench(plugin: PythonPlugin, repeat: int, cells: int) -> dict[str, float]:
    bare = [timed(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)) for _ in range(repeat)]

    starts, resources = [], []
    for _ in range(repeat):
        resource = plugin.create_resource({}).id
        resources.append(resource)
        starts.append(timed(lambda r=resource: plugin.execute_tool(r, "execute_python", code="1")))
        plugin.close(resource)

    source = resources[0]
    for n in range(cells):
        plugin.execute_tool(source, "execute_python", code=f"v{n} = [i * {n} for i in range(100)]")
    version = plugin.commit_version(source)
    replays = [timed(lambda r=r: plugin.load_version(r, version)) for r in resources]
    for resource in resources:
        plugin.destroy_resource(resource)
    return {
        "python_c_pass_s": statistics.median(bare),
        "kernel_start_s": statistics.median(starts),
        f"replay_{cells}_cells_s": statistics.median(replays),
    }


def measure(repeat: int, cells: int) -> dict[str, float]:
    """The medians of :func:`bench`, in a throw-away home."""
    with tempfile.TemporaryDirectory(prefix="domarkx-bench-") as home:
        store = Store(Path(home))
        try:
            return bench(PythonPlugin(PluginContext(home=Path(home), store=store)), repeat, cells)
        finally:
            store.close()


def bare_kernel_start() -> float:
    """Seconds for jupyter_client alone to start a kernel and run ``1`` (the floor for the python resource)."""
    from jupyter_client.manager import start_new_kernel

    start = time.perf_counter()
    manager, client = start_new_kernel(kernel_name="python3", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client.execute_interactive("1", timeout=60, output_hook=lambda _msg: None)
        return time.perf_counter() - start
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def figures(quick: bool = False) -> dict[str, Any]:
    cells = 10 if quick else 50
    repeat = 2 if quick else 5
    result = measure(repeat, cells)
    result["jupyter_client_start_s"] = statistics.median(bare_kernel_start() for _ in range(repeat))
    rows = [
        row(
            "python resource: kernel start + first cell",
            result["kernel_start_s"],
            baseline="jupyter_client start + run",
            baseline_s=result["jupyter_client_start_s"],
        ),
        row(f"python resource: load = replay {cells} cells", result[f"replay_{cells}_cells_s"]),
    ]
    return {"area": "Python kernel", "rows": rows, "details": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement (default 5)")
    parser.add_argument("--cells", type=int, default=50, help="cells in the replayed history (default 50)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = measure(args.repeat, args.cells)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, seconds in figures.items():
            print(f"{name:24} {seconds * 1000:8.0f} ms")
        print(f"{'kernel start / python':24} {figures['kernel_start_s'] / figures['python_c_pass_s']:8.1f} ×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
