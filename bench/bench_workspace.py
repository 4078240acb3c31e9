"""local_shell versions, as a ratio to plain git doing the same in the same run.

    python bench/bench_workspace.py [--files 10000] [--repeat 9]

Builds a work tree of ``--files`` small files (100 per directory), puts it in a
``local_shell`` resource and in an ordinary git repository, commits both once
(untimed), then ``--repeat`` times, interleaved:

* ``commit``: change one file, then ``plugin.commit_version`` against
  ``git add -A`` + ``git commit`` in the plain repository;
* ``load older``: ``plugin.load_version(previous)`` against ``git checkout -q
  <previous commit>`` (one file differs);
* ``load newer``: back to the latest version, against ``git checkout -q main``;
* ``load dirty``: after a tool call changed one file and made another, load the
  previous version (the tree is staged first), against ``git checkout -f -q
  <previous>`` + ``git clean -fdxq``, which is what discarding costs in git;
* ``diff``: ``plugin.diff_versions(previous, latest)`` (one file changed, as a
  patch) against ``git diff <previous> HEAD`` in the plain repository.

Both sides run the same git binary as subprocesses. Prints a table of medians
and one JSON line. The target is ≤ 1.5× git for each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import GIT_ENV, populate, row, timed

from domarkx.data.store import Store
from domarkx.workspace.plugin import PluginContext
from domarkx.workspace.plugins.local_shell import LocalShellPlugin

TARGET = 1.5
MIN_FILES = 4300
"""The bench edits file 4242."""


class PlainGit:
    """The baseline: an ordinary repository, driven the way a person would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, **GIT_ENV}
        self.git("init", "-q", "-b", "main")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "initial")

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.root, env=self.env, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    def commit(self) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "change")

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")


DIRTY = "echo scratch > scratch.txt && echo '# edited' >> pkg001/module_00100.py"


def touch(root: Path, run: int) -> None:
    with (root / "pkg042" / "module_04242.py").open("a") as fh:
        fh.write(f"RUN = {run}\n")


def measure(files: int, repeat: int) -> dict[str, float]:
    """Medians of each side's commit and loads on a work tree of ``files`` files (at least MIN_FILES)."""
    if files < MIN_FILES:
        raise ValueError(f"the work tree needs at least {MIN_FILES} files (the bench edits file 4242)")
    times: dict[str, list[float]] = {
        k: []
        for k in (
            "commit",
            "git commit",
            "load older",
            "git checkout older",
            "load newer",
            "git checkout newer",
            "load dirty",
            "git checkout -f + clean",
            "diff",
            "git diff",
        )
    }
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "home") as store:
        plugin = LocalShellPlugin(PluginContext(home=store.home, store=store))
        rid = plugin.create_resource({"sandbox": "none"}).id
        work = plugin.work_dir(rid)
        populate(work, files)
        plain_root = Path(tmp) / "plain"
        shutil.copytree(work, plain_root)
        plain = PlainGit(plain_root)
        latest = plugin.commit_version(rid)

        for run in range(repeat):
            touch(work, run)
            touch(plain_root, run)
            previous, plain_previous = latest, plain.head()
            times["commit"].append(timed(lambda: plugin.commit_version(rid)))
            times["git commit"].append(timed(plain.commit))
            latest = plugin.get_version(rid)
            assert latest != previous

            changes = []
            times["diff"].append(timed(lambda: changes.append(plugin.diff_versions(previous, latest))))  # noqa: B023
            times["git diff"].append(timed(lambda: plain.git("diff", plain_previous, "HEAD")))  # noqa: B023
            assert [c.name for c in changes[0].changes] == ["pkg042/module_04242.py"]

            times["load older"].append(timed(lambda: plugin.load_version(rid, previous)))  # noqa: B023
            times["git checkout older"].append(timed(lambda: plain.git("checkout", "-q", plain_previous)))  # noqa: B023
            times["load newer"].append(timed(lambda: plugin.load_version(rid, latest)))  # noqa: B023
            times["git checkout newer"].append(timed(lambda: plain.git("checkout", "-q", "main")))

            plugin.execute_tool(rid, "run_command", command=DIRTY)
            subprocess.run(["bash", "-c", DIRTY], cwd=plain_root, check=True)
            times["load dirty"].append(timed(lambda: plugin.load_version(rid, previous)))  # noqa: B023
            times["git checkout -f + clean"].append(
                timed(lambda: (plain.git("checkout", "-f", "-q", plain_previous), plain.git("clean", "-fdxq")))  # noqa: B023
            )
            assert not (work / "scratch.txt").exists()
            plugin.load_version(rid, latest)
            plain.git("checkout", "-q", "main")

        assert (work / "pkg042" / "module_04242.py").read_bytes() == (
            plain_root / "pkg042" / "module_04242.py"
        ).read_bytes()

    return {name: statistics.median(values) for name, values in times.items()}


def figures(quick: bool = False) -> dict[str, Any]:
    files = MIN_FILES if quick else 10_000
    medians = measure(files, 3 if quick else 9)
    rows = [
        row(f"{label} ({files:,} files)", medians[ours], baseline=theirs, baseline_s=medians[theirs], max_ratio=target)
        for label, ours, theirs, target in (
            ("commit after one change", "commit", "git commit", TARGET),
            ("load an older version", "load older", "git checkout older", TARGET),
            ("load the newer version", "load newer", "git checkout newer", TARGET),
            ("load after uncommitted changes", "load dirty", "git checkout -f + clean", TARGET),
            ("diff of two versions (one file changed)", "diff", "git diff", TARGET),
        )
    ]
    return {"area": "Workspace versions (local_shell)", "rows": rows, "details": {"files": files, **medians}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="files in the work tree (default 10000)")
    parser.add_argument("--repeat", type=int, default=9, help="runs of each measurement (default 9)")
    args = parser.parse_args(argv)
    if args.files < MIN_FILES:
        parser.error(f"--files must be at least {MIN_FILES} (the bench edits file 4242)")
    medians = measure(args.files, args.repeat)

    ratios = {
        "commit": medians["commit"] / medians["git commit"],
        "load_older": medians["load older"] / medians["git checkout older"],
        "load_newer": medians["load newer"] / medians["git checkout newer"],
        "load_dirty": medians["load dirty"] / medians["git checkout -f + clean"],
        "diff": medians["diff"] / medians["git diff"],
    }
    print(f"work tree: {args.files} files, {args.repeat} runs, medians")
    print(f"{'':22}{'local_shell':>14}{'git':>10}{'ratio':>8}")
    for label, ours, theirs, key in (
        ("commit (1 change)", "commit", "git commit", "commit"),
        ("load older version", "load older", "git checkout older", "load_older"),
        ("load newer version", "load newer", "git checkout newer", "load_newer"),
        ("load after changes", "load dirty", "git checkout -f + clean", "load_dirty"),
        ("diff (1 change)", "diff", "git diff", "diff"),
    ):
        print(f"{label:22}{medians[ours] * 1000:11.1f} ms{medians[theirs] * 1000:7.1f} ms{ratios[key]:8.2f}")
    worst = max(ratios.values())
    verdict = "ok" if worst <= TARGET else "over target"
    print(f"ratios ≤ {worst:.2f} (target ≤ {TARGET}: {verdict})")
    print(
        json.dumps(
            {
                "bench": "workspace",
                "files": args.files,
                "repeat": args.repeat,
                **{f"{name.replace(' ', '_')}_s": round(value, 5) for name, value in medians.items()},
                **{f"ratio_{name}": round(value, 3) for name, value in ratios.items()},
                "target": TARGET,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
