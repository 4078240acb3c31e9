"""Executing a document against executing the same cells as a notebook (papermill, nbconvert).

    python bench/bench_notebook.py [--cells 10] [--repeat 3]

The same ``--cells`` code cells (a small data-wrangling session: build
records, aggregate, serialize, print) run three ways, each end to end as a
fresh process, interleaved:

* ``domarkx run doc.md``: a document whose assistant messages hold the cells as
  ```python blocks, with a ``python`` (Jupyter) resource; the run imports the
  document, starts a kernel, executes and commits after each message;
* ``papermill in.ipynb out.ipynb`` on the equivalent notebook, the baseline;
* ``jupyter nbconvert --to notebook --execute`` on it, for reference.

Each side must print the last cell's marker, so all three provably ran the
cells. Target: domarkx ≤ papermill's time. papermill and nbconvert are the
``bench`` extra (``pip install -e '.[bench]'``); without them only domarkx is timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console_script, interleaved, median, print_rows, row

TARGET = 1.0
MARKER = "bench-notebook-done"

CELLS = [
    "import json, math, random, statistics\nrandom.seed(7)",
    "records = [{'id': i, 'region': random.choice('nsew'), 'amount': random.random() * 100} for i in range(50_000)]",
    "by_region = {}\nfor r in records:\n    by_region.setdefault(r['region'], []).append(r['amount'])",
    "totals = {k: round(sum(v), 2) for k, v in sorted(by_region.items())}\ntotals",
    "spread = {k: statistics.pstdev(v) for k, v in by_region.items()}",
    "blob = json.dumps(records)\nlen(blob)",
    "again = json.loads(blob)\nassert again == records",
    "roots = [math.sqrt(r['amount']) for r in records]\nround(sum(roots), 3)",
    "top = sorted(records, key=lambda r: r['amount'], reverse=True)[:5]\n[t['id'] for t in top]",
    "squares = {i: i * i for i in range(100_000)}\nsum(squares.values()) % 97",
]


def cells(count: int) -> list[str]:
    """``count`` cells: the session above, repeated with fresh names if more are asked for, then the marker."""
    body = [CELLS[i % len(CELLS)] for i in range(count - 1)]
    return [*body, f"print({MARKER!r})"]


def document(sources: list[str]) -> str:
    parts = [
        "---\ntitle: notebook benchmark\n---\n",
        "```workspace-config\nresources:\n  - type: python\n```\n",
        "## system\n\n> You analyse data in Python.\n",
    ]
    for n, source in enumerate(sources):
        parts.append(f"## user\n\n> Step {n + 1}.\n")
        parts.append(f"## assistant\n\n```python\n{source}\n```\n")
    return "\n".join(parts)


def notebook(sources: list[str]) -> dict[str, Any]:
    """The same cells as an nbformat-4 notebook (written by hand: nbformat is only needed to run it)."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell-{n}",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for n, source in enumerate(sources)
        ],
    }


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def run_checked(command: list[str], env: dict[str, str], proof: Path | None = None) -> None:
    """Run ``command``; the marker must be in its output (or in the written notebook ``proof``)."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    seen = done.stdout if proof is None else proof.read_text()
    if MARKER not in seen:
        raise RuntimeError(f"{' '.join(command[:3])} did not run the last cell")


def measure(count: int, repeat: int) -> dict[str, Any]:
    sources = cells(count)
    with tempfile.TemporaryDirectory(prefix="domarkx-bench-") as tmp:
        root = Path(tmp)
        doc, ipynb = root / "doc.md", root / "in.ipynb"
        doc.write_text(document(sources))
        ipynb.write_text(json.dumps(notebook(sources), indent=1))
        homes = iter(range(10**6))
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}

        def domarkx() -> None:
            home = root / f"home{next(homes)}"
            run_checked([*console_script(), "run", str(doc)], {**env, "DOMARKX_HOME": str(home)})

        actions = {"domarkx run": domarkx}
        if has("papermill"):
            out = root / "papermill.ipynb"
            command = [sys.executable, "-m", "papermill", "--no-progress-bar", "-k", "python3", str(ipynb), str(out)]
            actions["papermill"] = lambda: run_checked(command, env, out)
        if has("nbconvert"):
            converted = root / "nbconvert.ipynb"
            nbconvert = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", str(ipynb)]
            nbconvert += ["--output", str(converted)]
            actions["nbconvert --execute"] = lambda: run_checked(nbconvert, env, converted)
        times = interleaved(actions, repeat)
    return {"cells": count, "repeat": repeat, **{f"{name}_s": median(values) for name, values in times.items()}}


def figures(quick: bool = False) -> dict[str, Any]:
    result = measure(4 if quick else 10, 1 if quick else 3)
    ours = result["domarkx run_s"]
    label = f"domarkx run ({result['cells']} python cells)"
    rows = []
    if "papermill_s" in result:
        rows.append(row(label, ours, baseline="papermill", baseline_s=result["papermill_s"], max_ratio=TARGET))
    else:
        rows.append(row(label + ", papermill not installed", ours))
    if "nbconvert --execute_s" in result:
        rows.append(row(label, ours, baseline="nbconvert --execute", baseline_s=result["nbconvert --execute_s"]))
    return {"area": "Executing a document", "rows": rows, "details": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=10, help="code cells (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (default 3)")
    args = parser.parse_args(argv)
    result = measure(max(2, args.cells), args.repeat)
    ours = result["domarkx run_s"]
    rows = [
        row(f"domarkx run ({result['cells']} cells)", ours, baseline=name.removesuffix("_s"), baseline_s=value)
        for name, value in result.items()
        if name.endswith("_s") and name != "domarkx run_s"
    ]
    print_rows("Executing a document", rows or [row("domarkx run", ours)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
