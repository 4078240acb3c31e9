"""Run every benchmark and write ``bench/RESULTS.md`` (and ``bench/scaling.png``).

    pip install -e '.[bench]'
    python bench/run.py                  # everything, several minutes
    python bench/run.py --quick          # fewer runs, smaller sizes: a smoke test
    python bench/run.py --only turn --only scaling
    eval "$(.ci/docker.sh start)"        # first, for the docker_sandbox figures (else that bench reports the error)

Each bench module exposes ``figures(quick) -> dict``; they run in this process,
one after another, and each figure is a median of several runs with its
baseline measured in the same run. A bench that fails is reported in the file
(and makes the exit code 1) without losing the others.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import format_seconds

HERE = Path(__file__).resolve().parent
BENCHES = {
    "import": "bench_import",
    "startup": "bench_startup",
    "workspace": "bench_workspace",
    "fork": "bench_fork",
    "kernel": "bench_kernel",
    "python_restore": "bench_python_restore",
    "turn": "bench_turn",
    "notebook": "bench_notebook",
    "scaling": "bench_scaling",
    "push": "bench_push",
    "rerun": "bench_rerun",
    "diff": "bench_diff",
    "docker": "bench_docker",  # needs a Docker engine: eval "$(.ci/docker.sh start)"
}
PLOT = "scaling.png"


def machine(load_before: float) -> list[tuple[str, str]]:
    """What the figures were measured on."""
    cpu = _first_value(Path("/proc/cpuinfo"), "model name") or platform.processor() or "unknown"
    memory = _first_value(Path("/proc/meminfo"), "MemTotal")
    ram = f"{int(memory.split()[0]) / 1024 / 1024:.1f} GiB" if memory else "unknown"
    os_name = _first_value(Path("/etc/os-release"), "PRETTY_NAME", sep="=").strip('"') or platform.system()
    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    from domarkx._version import __version__

    return [
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("RAM", ram),
        ("OS", f"{os_name} ({platform.release()})"),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("git", git.removeprefix("git version ")),
        ("domarkx", __version__),
        ("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("load average (1 min), before → after", f"{load_before:.1f} → {os.getloadavg()[0]:.1f}"),
    ]


def _first_value(path: Path, key: str, sep: str = ":") -> str:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        name, found, value = line.partition(sep)
        if found and name.strip() == key:
            return value.strip()
    return ""


def run_bench(name: str, quick: bool) -> dict[str, Any]:
    """One bench's figures, or its failure (``error``) so the report still gets written."""
    print(f"== {name}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        result: dict[str, Any] = importlib.import_module(BENCHES[name]).figures(quick=quick)
    except Exception as exc:
        traceback.print_exc()
        result = {"area": name, "rows": [], "error": f"{type(exc).__name__}: {exc}"}
    result["seconds"] = time.perf_counter() - start
    print(f"   {name}: {result['seconds']:.0f} s", file=sys.stderr, flush=True)
    return result


def table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| figure | median | baseline | baseline median | ratio | target | result |",
        "|---|--:|---|--:|--:|--:|---|",
    ]
    for item in rows:
        ratio = f"{item['ratio']:.2f}×" if item["ratio"] is not None else ""
        base = format_seconds(item["baseline_s"]) if item["baseline_s"] else ""
        verdict = {True: "pass", False: "**FAIL**", None: ""}[item["pass"]]
        figure = item["figure"].lstrip()
        figure = "&nbsp;" * 2 * (len(item["figure"]) - len(figure)) + figure  # a breakdown row is indented
        lines.append(
            f"| {figure} | {format_seconds(item['median_s'])} | {item['baseline'] or ''} | {base} | {ratio} "
            f"| {item['target']} | {verdict} |"
        )
    return lines


def scaling_tables(result: dict[str, Any]) -> list[str]:
    sizes = result["sizes"]
    lines: list[str] = []
    for panel, group in result["curves"].items():
        lines += [
            "",
            f"| {panel} | " + " | ".join(f"{s:,}" for s in sizes) + " | slope | linear or better? |",
            "|---|" + "--:|" * len(sizes) + "--:|---|",
        ]
        for op, curve in group.items():
            growth = result["slopes"][f"{panel}: {op}"]
            verdict = "" if "baseline" in op else ("yes" if growth <= result["max_slope"] else "**NO**")
            cells = " | ".join(format_seconds(curve[s]) for s in sizes)
            lines.append(f"| {op} | {cells} | {growth:.2f} | {verdict} |")
    return lines


def report(results: list[dict[str, Any]], quick: bool, plot: str | None, elapsed: float, load: float) -> str:
    judged = [r["pass"] for res in results for r in res["rows"] if r["pass"] is not None]
    judged += [
        res["slopes"][key] <= res["max_slope"]
        for res in results
        if "slopes" in res
        for key in res["slopes"]
        if "baseline" not in key
    ]
    failed = [res["area"] for res in results if "error" in res]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python bench/run.py{' --quick' if quick else ''}` in {elapsed / 60:.1f} minutes"
        + (" (quick: fewer runs, smaller sizes)." if quick else ".")
        + " Every figure is the median of several runs, and every baseline was measured in the same run on the"
        " same data. Reproduce with `pip install -e '.[bench]' && python bench/run.py`; each `bench/bench_*.py`"
        " also runs on its own, and its docstring says exactly what it measures. The ratios are the robust"
        " figures: both sides ran interleaved, so load on the machine (see below) hits them alike, while absolute"
        " times move with it.",
        "",
        f"**{sum(judged)} of {len(judged)} targets met.**"
        + (f" Benches that failed: {', '.join(failed)}." if failed else ""),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in machine(load)],
    ]
    for res in results:
        lines += ["", f"## {res['area']}", ""]
        if "error" in res:
            lines.append(f"The bench failed: `{res['error']}`")
            continue
        lines += table(res["rows"])
        if "curves" in res:
            lines += [
                "",
                "Growth: the slope of log(time) against log(size) over the sizes from 100 up "
                f"(1 is linear, 2 quadratic; target ≤ {res['max_slope']}).",
                *scaling_tables(res),
            ]
            if plot:
                lines += ["", f"![scaling]({plot})"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and smaller sizes (a smoke test)")
    parser.add_argument(
        "--only", action="append", choices=list(BENCHES), metavar="NAME", help=f"run only NAME ({', '.join(BENCHES)})"
    )
    parser.add_argument(
        "--output", type=Path, default=HERE / "RESULTS.md", help="where to write (default bench/RESULTS.md)"
    )
    args = parser.parse_args(argv)
    start, load = time.perf_counter(), os.getloadavg()[0]
    results = [run_bench(name, args.quick) for name in BENCHES if not args.only or name in args.only]
    plot = None
    scaling = next((res for res in results if "curves" in res), None)
    if scaling is not None:
        try:
            from bench_scaling import plot as draw

            draw(scaling, args.output.parent / PLOT)
            plot = PLOT
        except ImportError:
            print("matplotlib is not installed: no plot (pip install -e '.[bench]')", file=sys.stderr)
    args.output.write_text(report(results, args.quick, plot, time.perf_counter() - start, load), encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 1 if any("error" in res for res in results) else 0


if __name__ == "__main__":
    sys.exit(main())
