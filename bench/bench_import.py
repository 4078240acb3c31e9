"""Import speed, as a ratio to markdown-it-py parsing the same text in the same run.

    python bench/bench_import.py [--size-mb 10] [--repeat 5]

Generates a session document of about ``--size-mb`` megabytes (thousands of
messages: blockquoted prose, paragraphs, code fences of several lengths, message
metadata), then measures, ``--repeat`` times each:

* ``raw parse``: ``MarkdownIt("commonmark").parse(text)``, the baseline;
* ``import``: ``SnapshotManager(Store(tmp)).build(...)`` + ``.save(...)`` in-process
  (decode, macro scan, parse, hash, store), into a fresh store every time;
* ``cli import``: ``domarkx import FILE -q`` in a subprocess, start-up included.

Prints a table of medians and one JSON line. The target is import ≤ 2× raw parse.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from markdown_it import MarkdownIt

from domarkx.data.store import Store
from domarkx.session.snapshot import SnapshotManager

TARGET = 2.0
WORDS = (
    "the",
    "a",
    "session",
    "snapshot",
    "workspace",
    "resource",
    "plugin",
    "markdown",
    "export",
    "import",
    "model",
    "tool",
    "file",
    "line",
    "value",
    "reads",
    "writes",
    "keeps",
    "returns",
    "changes",
    "every",
    "each",
    "some",
    "result",
    "error",
    "output",
    "input",
    "version",
    "document",
    "message",
)


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
    if rng.random() < 0.3:
        words[rng.randrange(len(words))] = f"`{rng.choice(WORDS)}()`"
    if rng.random() < 0.2:
        words[rng.randrange(len(words))] = f"*{rng.choice(WORDS)}*"
    return " ".join(words).capitalize() + "."


def prose(rng: random.Random, lines: int) -> list[str]:
    return [" ".join(sentence(rng) for _ in range(rng.randint(1, 3))) for _ in range(lines)]


def code(rng: random.Random) -> list[str]:
    lang = rng.choice(["python", "bash", "json", "sql"])
    body = [
        f"{rng.choice(WORDS)}_{i} = {rng.randint(0, 999)}  # {rng.choice(WORDS)}"
        for i in range(rng.randint(2, 12))
    ]
    if rng.random() < 0.15:  # a longer fence holding a shorter one
        return [f"````markdown name=example_{rng.randint(0, 99)}.md", "```" + lang, *body, "```", "````"]
    fence = rng.choice(["```", "```", "~~~"])
    return [f"{fence}{lang} name={rng.choice(WORDS)}.{lang}", *body, fence]


def message(rng: random.Random, index: int) -> list[str]:
    role = "user" if index % 2 == 0 else "assistant"
    lines = [f"## {role}", ""]
    if rng.random() < 0.3:
        lines += ["```json msg-metadata", json.dumps({"turn": index, "model": "bench"}), "```", ""]
    if role == "user":
        lines += ["> " + line for line in prose(rng, rng.randint(1, 4))] + [""]
        return lines
    lines += [*prose(rng, rng.randint(1, 3)), ""]
    for _ in range(rng.randint(1, 3)):
        lines += [*code(rng), ""]
        if rng.random() < 0.5:
            lines += [*prose(rng, 1), ""]
    return lines


def generate(size: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    lines = [
        "---",
        "title: Import benchmark",
        "created: 2024-01-01",
        "---",
        "",
        "```session-config",
        '{"timeout": 60}',
        "```",
        "",
        "```workspace-config",
        "resources:",
        "  - type: local_shell",
        "```",
        "",
    ]
    total, index = 0, 0
    while total < size:
        chunk = message(rng, index)
        lines += chunk
        total += sum(len(line) + 1 for line in chunk)
        index += 1
    return "\n".join(lines) + "\n"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def import_once(data: bytes, path: Path) -> tuple[float, float, int]:
    """(build seconds, save seconds, messages) into a fresh store."""
    with tempfile.TemporaryDirectory() as home, Store(Path(home)) as store:
        manager = SnapshotManager(store)
        start = time.perf_counter()
        snapshot = manager.build(data, path=str(path), base_dir=path.parent)
        built = time.perf_counter()
        manager.save(snapshot)
        return built - start, time.perf_counter() - built, len(snapshot.messages)


def cli_import_once(path: Path) -> float:
    script = Path(sys.executable).parent / "domarkx"
    command = (
        [str(script), "import", str(path), "-q"]
        if script.exists()
        else ["domarkx", "import", str(path), "-q"]
    )
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "DOMARKX_HOME": home}
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=10.0, help="document size (default 10)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement (default 5)")
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end command-line run")
    args = parser.parse_args(argv)

    text = generate(int(args.size_mb * 1_000_000))
    data = text.encode("utf-8")
    md = MarkdownIt("commonmark")
    raw, build, save, cli = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.md"
        path.write_bytes(data)
        messages = import_once(data, path)[2]  # a warm-up run: imports, caches, page cache
        md.parse(text)
        for _ in range(args.repeat):  # interleaved, so drift affects both sides alike
            raw.append(timed(lambda: md.parse(text)))
            b, s, _ = import_once(data, path)
            build.append(b)
            save.append(s)
            if not args.no_cli:
                cli.append(cli_import_once(path))

    base = statistics.median(raw)
    total = [b + s for b, s in zip(build, save, strict=True)]
    rows = [
        ("raw parse (markdown-it)", raw),
        ("import: build", build),
        ("import: save", save),
        ("import", total),
    ]
    if cli:
        rows.append(("cli import (end to end)", cli))
    print(f"document: {len(data) / 1e6:.1f} MB, {messages} messages, {args.repeat} runs, medians")
    print(f"{'':26}{'seconds':>10}{'× raw':>10}")
    for name, values in rows:
        median = statistics.median(values)
        print(f"{name:26}{median:10.3f}{median / base:10.2f}")
    ratio = statistics.median(total) / base
    verdict = "ok" if ratio <= TARGET else "over target"
    print(f"import / raw parse = {ratio:.2f} (target ≤ {TARGET}: {verdict})")
    result = {
        "bench": "import",
        "bytes": len(data),
        "messages": messages,
        "repeat": args.repeat,
        "raw_parse_s": round(base, 4),
        "import_s": round(statistics.median(total), 4),
        "build_s": round(statistics.median(build), 4),
        "save_s": round(statistics.median(save), 4),
        "cli_import_s": round(statistics.median(cli), 4) if cli else None,
        "ratio": round(ratio, 3),
        "cli_ratio": round(statistics.median(cli) / base, 3) if cli else None,
        "target": TARGET,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
