"""Quick commands as a user runs them: each as a whole process, as a ratio to ``python -c pass``.

    python bench/bench_startup.py [--repeat 20]

The commands are the ones people type between turns (``--version``, ``--help``,
``snapshots ls``/``inspect``, ``instances ls``/``inspect``, ``log``), run by the
``domarkx`` console script installed beside this interpreter, against a home
holding one snapshot and one instance. The baseline is ``-c pass`` on **the
interpreter named in that script's ``#!`` line**: the one every ``domarkx``
start pays for. All commands and the baseline run interleaved, round after
round, and the medians are compared. The target is ≤ 5× bare Python each.

Why the baseline is read from the script: this bench used to time
``sys.executable -c pass``, the interpreter running the bench. Run from a
Python other than the venv's (a pyenv global whose site-packages has a ``.pth``
start-up hook), that baseline took ~35 ms against ~12 ms for the venv's own
Python, so ``domarkx --version`` showed 1.6× while a user of the venv saw
4.4×. Now both sides start the same interpreter with the same site-packages.
And ``PYTHONDONTWRITEBYTECODE`` is dropped for the timed processes: with it set
(some sandboxes and CI images do), every start compiles domarkx's modules from
source, which no installed copy does (``pip`` writes the caches at install).
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
from _common import console_script, interleaved, median, row

TARGET = 5.0
DOCUMENT = "---\ntitle: start-up bench\n---\n\n## user\n\n> list the files\n\n## assistant\n\n```bash\nls\n```\n"
COMMANDS = {
    "domarkx --version": ["--version"],
    "domarkx --help": ["--help"],
    "domarkx snapshots ls": ["snapshots", "ls"],
    "domarkx snapshots inspect": ["snapshots", "inspect", "bench"],
    "domarkx instances ls": ["instances", "ls"],
    "domarkx instances inspect": ["instances", "inspect", "try1"],
    "domarkx log": ["log", "try1"],
}


def interpreter(script: list[str]) -> str:
    """The Python a console script starts: its ``#!`` line (else, for a non-script, this one)."""
    try:
        first = Path(script[0]).read_bytes().split(b"\n", 1)[0]
    except OSError:
        return sys.executable
    if not first.startswith(b"#!"):
        return sys.executable
    return first[2:].decode().strip().split()[0]


def user_environment(home: Path) -> dict[str, str]:
    """This environment as a user's shell has it: bytecode caches on (``pip install`` writes them)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "DOMARKX_HOME": str(home)}


def prepare(home: Path, script: list[str]) -> None:
    """A home with one tagged snapshot and one instance named ``try1``, as a user would have."""
    doc = home / "doc.md"
    doc.write_text(DOCUMENT)
    env = user_environment(home)
    subprocess.run([*script, "import", str(doc), "-t", "bench"], check=True, env=env, capture_output=True)
    subprocess.run([*script, "run", "bench", "--name", "try1", "-q"], check=True, env=env, capture_output=True)


def measure(repeat: int) -> dict[str, Any]:
    """Medians of the baseline and of every command, ``repeat`` (at least 10) interleaved rounds."""
    repeat = max(10, repeat)
    script = console_script()
    python = interpreter(script)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        prepare(home, script)
        env = user_environment(home)
        commands = {"python -c pass": [python, "-c", "pass"]}
        commands |= {name: [*script, *args] for name, args in COMMANDS.items()}
        times = interleaved(
            {
                name: lambda c=command: subprocess.run(c, check=True, stdout=subprocess.DEVNULL, env=env)
                for name, command in commands.items()
            },
            repeat,
        )
    medians = {name: median(values) for name, values in times.items()}
    base = medians["python -c pass"]
    return {
        "bench": "startup",
        "repeat": repeat,
        "interpreter": python,
        "medians_s": medians,
        "ratios": {name: value / base for name, value in medians.items() if name != "python -c pass"},
        "target": TARGET,
    }


def figures(quick: bool = False) -> dict[str, Any]:
    result = measure(10 if quick else 20)
    medians = result["medians_s"]
    rows = [
        row(name, medians[name], baseline="python -c pass", baseline_s=medians["python -c pass"], max_ratio=TARGET)
        for name in COMMANDS
    ]
    return {"area": "Start-up", "rows": rows, "details": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="rounds of every command (default 20, at least 10)")
    args = parser.parse_args(argv)
    result = measure(args.repeat)
    base = result["medians_s"]["python -c pass"]
    print(f"{result['repeat']} rounds, medians; baseline: {result['interpreter']} -c pass = {base * 1000:.1f} ms")
    over = 0
    for name, ratio in result["ratios"].items():
        verdict = "ok" if ratio <= TARGET else "over target"
        over += ratio > TARGET
        print(f"  {name:28}{result['medians_s'][name] * 1000:8.1f} ms  {ratio:5.2f}×  (≤ {TARGET:g}×: {verdict})")
    print(json.dumps({k: v for k, v in result.items() if k != "medians_s"}, default=lambda v: round(v, 4)))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
