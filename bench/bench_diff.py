"""``domarkx diff`` of two versions of a 10,000-file workspace with one change, as a ratio to ``git diff``.

    python bench/bench_diff.py [--files 10000] [--repeat 9]

A document's first message makes ``--files`` small files (100 per directory,
the shape of bench_workspace's tree) in a ``local_shell`` resource; its second
changes one of them. The same files are committed twice in an ordinary git
repository, with the same change. Timed, interleaved, each a whole process:

* ``domarkx diff INSTANCE@1 INSTANCE@2`` (the patch of the one file);
* ``git diff A B`` in the plain repository, the baseline.

Both outputs must contain the changed line. For the record, the same
comparison inside one process (``workspace.compare``, as ``verify`` and the
MCP server call it) and ``python -c pass`` (the floor any Python command
starts from) are timed too. Target: the whole command ≤ 1.5× git diff.
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
from _common import console_script, git, git_repository, interleaved, median, populate, print_rows, row

TARGET = 1.5
CHANGED = "pkg042/module_04242.py"
LINE = "CHANGED = True"

MAKE = """\
import os
for i in range({files}):
    folder = f"pkg{{i // 100:03d}}"
    os.makedirs(folder, exist_ok=True)
    with open(f"{{folder}}/module_{{i:05d}}.py", "w") as fh:
        fh.write(f'\"\"\"Module {{i}}.\"\"\"\\n\\n' + "".join(f"VALUE_{{j}} = {{i * j}}\\n" for j in range(12)))
"""


def document(files: int) -> str:
    make = MAKE.format(files=files)
    return (
        "## assistant\n\n```bash\npython3 - <<'EOF'\n" + make + "EOF\n```\n\n"
        f"## assistant\n\n```bash\necho '{LINE}' >> {CHANGED}\n```\n"
    )


def measure(files: int, repeat: int) -> dict[str, float]:
    script = console_script()
    with tempfile.TemporaryDirectory(prefix="domarkx-bench-diff-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "DOMARKX_HOME": str(folder / "home")}
        (folder / "doc.md").write_text(document(files))
        done = subprocess.run([*script, "run", str(folder / "doc.md"), "-q"], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"domarkx run failed: {done.stderr[-2000:]}")
        instance = done.stdout.strip().splitlines()[-1]
        plain = folder / "plain"
        populate(plain, files)
        git_repository(plain)
        with (plain / CHANGED).open("a") as fh:
            fh.write(LINE + "\n")
        git(plain, "commit", "-q", "-am", "change")

        def checked(argv: list[str], cwd: Path | None = None) -> None:
            out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=True).stdout
            if f"+{LINE}" not in out:
                raise RuntimeError(f"{argv[:2]} did not show the change: {out[:500]}")

        times = interleaved(
            {
                "domarkx": lambda: checked([*script, "diff", f"{instance}@0", f"{instance}@1"]),
                "git": lambda: checked(["git", "diff", "HEAD~1", "HEAD"], cwd=plain),
                "python": lambda: subprocess.run([sys.executable, "-c", "pass"], check=True),
            },
            repeat,
        )
        found = {name: median(values) for name, values in times.items()}
        found["in_process"] = _in_process(folder / "home", instance, repeat)
        return found


def _in_process(home: Path, instance: str, repeat: int) -> float:
    """``compare`` alone, in this process (no start-up, no printing)."""
    from _common import timed

    from domarkx.data.store import Store
    from domarkx.workspace.compare import compare, resolve_point
    from domarkx.workspace.manager import WorkspaceManager

    with Store(home) as store:
        a, b = resolve_point(store, f"{instance}@0"), resolve_point(store, f"{instance}@1")
        workspaces = WorkspaceManager(store)
        compare(workspaces, a.version, b.version)  # warm: plugin loaded
        return median([timed(lambda: compare(workspaces, a.version, b.version)) for _ in range(repeat)])


def rows(found: dict[str, float], files: int) -> list[dict[str, Any]]:
    base = f"git diff ({files:,} files)"
    return [
        row(f"domarkx diff, one change in {files:,} files", found["domarkx"], baseline=base,
            baseline_s=found["git"], max_ratio=TARGET),
        row("  of which: the comparison itself (in process)", found["in_process"], baseline=base,
            baseline_s=found["git"]),
        row("  the floor: python -c pass", found["python"], baseline=base, baseline_s=found["git"]),
    ]  # fmt: skip


def figures(quick: bool = False) -> dict[str, Any]:
    files, repeat = (2000, 3) if quick else (10_000, 9)
    return {"area": "Workspace diff", "rows": rows(measure(files, repeat), files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    found = rows(measure(args.files, args.repeat), args.files)
    if args.json:
        print(json.dumps({"rows": found}))
    else:
        print_rows("domarkx diff against git diff", found)


if __name__ == "__main__":
    main()
