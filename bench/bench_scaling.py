"""How domarkx's costs grow: with the messages of a document and with the files of a workspace.

    python bench/bench_scaling.py [--quick] [--repeat 3] [--plot bench/scaling.png]

Messages (10 → 10,000, generated like ``bench_import.py``'s documents, with
code blocks that a ``local_shell`` does not execute, so that only domarkx is
measured): import (build + save into a fresh store), run (``InstanceManager.create``,
the offline path), export (instance → Markdown), log (``history``), one turn
(``SessionManager.send`` with an in-process model that calls ``write_file``
once: what a conversation's own length costs each turn) and fork (at the last
message); raw markdown-it parsing of the same text is the baseline.

Files (10 → 10,000 in the workspace): commit after one changed file
(``WorkspaceManager.commit``) against ``git add -A`` + ``git commit`` of the
same tree, and fork of an instance whose latest message links that tree against
``git worktree add``.

Each point is the median of ``--repeat`` runs. The growth of each curve is the
least-squares slope of log(time) on log(size) over the larger sizes (from 100
up, where fixed costs stop hiding the trend): 1 is linear, 2 quadratic; the
target is ≤ 1.1 ("linear or better").
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import format_seconds, git, git_repository, median, row, slope, timed
from bench_import import generate
from bench_turn import Instant, bench_home, fork_source, work_dir

from domarkx.data.store import Store
from domarkx.session.manager import SessionManager
from domarkx.session.snapshot import SnapshotManager

SIZES = (10, 100, 1000, 10_000)
QUICK_SIZES = (10, 100)
MAX_SLOPE = 1.1
QUIET_LANGS = ("python", "json", "sql")
"""No ``bash``: a ``local_shell`` would run it, and the curve would measure bash."""
MESSAGE_OPS = ("raw parse (baseline)", "import", "run (offline)", "export", "log", "turn", "fork")
FILE_OPS = ("git commit (baseline)", "commit", "git worktree add (baseline)", "fork")

Curves = dict[str, dict[int, float]]


def repeat_median(action: Callable[[], object], repeat: int) -> float:
    return median([timed(action) for _ in range(repeat)])


def message_point(count: int, repeat: int, curves: Curves) -> None:
    """Every message operation on a generated document of ``count`` messages."""
    text = generate(messages=count, langs=QUIET_LANGS)
    data = text.encode()
    md = MarkdownIt("commonmark")
    curves["raw parse (baseline)"][count] = repeat_median(lambda: md.parse(text), repeat)

    def import_fresh() -> None:
        with tempfile.TemporaryDirectory(prefix="domarkx-bench-") as home, Store(Path(home)) as store:
            manager = SnapshotManager(store)
            manager.save(manager.build(data, path="scaling.md", base_dir=Path(home)))

    curves["import"][count] = repeat_median(import_fresh, repeat)
    with bench_home() as instances:
        snapshot = instances.snapshots.build(data, path="scaling.md", base_dir=instances.store.home)
        instances.snapshots.save(snapshot)
        made = []
        curves["run (offline)"][count] = repeat_median(lambda: made.append(instances.create(snapshot)), repeat)
        instance = made[0]
        assert len(instance.messages) >= count
        curves["export"][count] = repeat_median(lambda: instances.export(instance.id), repeat)
        curves["log"][count] = repeat_median(lambda: instances.store.instances.history(instance.id), repeat)
        sessions, model = SessionManager(instances), Instant("instant")
        curves["turn"][count] = repeat_median(lambda: sessions.send(instance, "one more note", model), repeat)
        last = len(instance.messages) - 1
        curves["fork"][count] = repeat_median(lambda: instances.fork(instance.id, last), repeat)


def file_point(count: int, repeat: int, curves: Curves) -> None:
    """Commit and fork of a workspace of ``count`` files, and plain git on the same tree."""
    with bench_home() as instances, tempfile.TemporaryDirectory(prefix="domarkx-bench-") as tmp:
        source = fork_source(instances, count)
        plain = Path(tmp) / "plain"
        shutil.copytree(work_dir(instances, source), plain)
        git_repository(plain)
        curves["git commit (baseline)"][count] = _commits(repeat, lambda n: _git_commit(plain, n))
        workspace = instances.workspaces.open(source.workspace_id)

        def commit_once(n: int) -> float:
            outcome = instances.workspaces.call(
                workspace, "write_file", {"path": "pkg000/module_00000.py", "content": f"RUN = {n}\n"}
            )
            assert outcome.ok, outcome.text
            return timed(lambda: instances.workspaces.commit(workspace))

        curves["commit"][count] = _commits(repeat, commit_once)
        at = len(source.messages) - 1
        trees = iter(range(10**6))
        curves["git worktree add (baseline)"][count] = repeat_median(
            lambda: git(plain, "worktree", "add", "-q", "--detach", str(Path(tmp) / f"tree{next(trees)}"), "main"),
            repeat,
        )
        curves["fork"][count] = repeat_median(lambda: instances.fork(source.id, at), repeat)


def _commits(repeat: int, once: Callable[[int], float]) -> float:
    once(-1)  # warm-up: the first commit after a fork or a copy refreshes git's stat cache
    return median([once(n) for n in range(repeat)])


def _git_commit(plain: Path, n: int) -> float:
    (plain / "pkg000" / "module_00000.py").write_text(f"RUN = {n}\n")
    return timed(lambda: (git(plain, "add", "-A"), git(plain, "commit", "-q", "-m", f"run {n}")))


def growth(curve: dict[int, float]) -> float:
    """The log-log slope over the sizes from 100 up (all sizes when there are fewer than two such)."""
    upper = {size: t for size, t in curve.items() if size >= 100}
    points = upper if len(upper) >= 2 else curve
    return slope(list(points), list(points.values()))


def measure(sizes: tuple[int, ...], repeat: int) -> dict[str, Curves]:
    messages: Curves = {op: {} for op in MESSAGE_OPS}
    files: Curves = {op: {} for op in FILE_OPS}
    for count in sizes:
        message_point(count, repeat, messages)
        file_point(count, repeat, files)
    return {"messages": messages, "files": files}


def figures(quick: bool = False, *, repeat: int | None = None) -> dict[str, Any]:
    sizes = QUICK_SIZES if quick else SIZES
    curves = measure(sizes, repeat or (1 if quick else 3))
    top = sizes[-1]
    msg, fil = curves["messages"], curves["files"]
    rows = [
        row(
            f"import, {top:,} messages",
            msg["import"][top],
            baseline="raw markdown-it parse",
            baseline_s=msg["raw parse (baseline)"][top],
        ),
        row(f"run (offline), {top:,} messages", msg["run (offline)"][top]),
        row(f"export, {top:,} messages", msg["export"][top]),
        row(f"log, {top:,} messages", msg["log"][top]),
        row(f"turn (in-process model), {top:,} messages", msg["turn"][top]),
        row(f"fork, {top:,} messages", msg["fork"][top]),
        row(
            f"commit, {top:,} files",
            fil["commit"][top],
            baseline="git add -A + commit",
            baseline_s=fil["git commit (baseline)"][top],
        ),
        row(
            f"fork, {top:,} files",
            fil["fork"][top],
            baseline="git worktree add",
            baseline_s=fil["git worktree add (baseline)"][top],
        ),
    ]
    slopes = {f"{panel}: {op}": growth(curve) for panel, group in curves.items() for op, curve in group.items()}
    return {
        "area": "Scaling",
        "rows": rows,
        "sizes": list(sizes),
        "curves": curves,
        "slopes": slopes,
        "max_slope": MAX_SLOPE,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Two log-log panels (messages, files), one line per operation, baselines dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    panels = (("messages", "messages in the document"), ("files", "files in the workspace"))
    for ax, (panel, label) in zip(axes, panels, strict=True):
        baselines = iter("sD^v")
        for op, curve in result["curves"][panel].items():
            sizes = sorted(curve)
            if "baseline" in op:
                ax.plot(sizes, [curve[s] for s in sizes], "--", color="0.55", marker=next(baselines), label=op)
            else:
                ax.plot(sizes, [curve[s] for s in sizes], "-", marker="o", label=op)
        top = max(max(curve.values()) for curve in result["curves"][panel].values())
        sizes = result["sizes"]
        ax.plot(sizes, [top * s / sizes[-1] for s in sizes], ":", color="0.75", label="linear (slope 1)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("seconds (median)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title("Session size")
    axes[1].set_title("Workspace size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_curves(result: dict[str, Any]) -> None:
    sizes = result["sizes"]
    for panel, group in result["curves"].items():
        print(f"{panel:30}" + "".join(f"{s:>11,}" for s in sizes) + "      slope")
        for op, curve in group.items():
            cells = "".join(f"{format_seconds(curve[s]):>11}" for s in sizes)
            verdict = "ok" if result["slopes"][f"{panel}: {op}"] <= MAX_SLOPE else "SUPERLINEAR"
            print(f"  {op:28}{cells}{result['slopes'][f'{panel}: {op}']:9.2f} {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 10 and 100 only, one run each")
    parser.add_argument("--repeat", type=int, help="runs per point (default 3, 1 with --quick)")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="also draw the curves (needs matplotlib)")
    args = parser.parse_args(argv)
    result = figures(args.quick, repeat=args.repeat)
    print_curves(result)
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
