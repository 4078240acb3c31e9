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
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console_script, row, timed

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


LANGS = ("python", "bash", "json", "sql")
"""Code-block languages; a document to run (not only import) leaves out ``bash``, which would execute."""


def code(rng: random.Random, langs: tuple[str, ...] = LANGS) -> list[str]:
    lang = rng.choice(langs)
    body = [
        f"{rng.choice(WORDS)}_{i} = {rng.randint(0, 999)}  # {rng.choice(WORDS)}" for i in range(rng.randint(2, 12))
    ]
    if rng.random() < 0.15:  # a longer fence holding a shorter one
        return [f"````markdown name=example_{rng.randint(0, 99)}.md", "```" + lang, *body, "```", "````"]
    fence = rng.choice(["```", "```", "~~~"])
    return [f"{fence}{lang} name={rng.choice(WORDS)}.{lang}", *body, fence]


def message(rng: random.Random, index: int, langs: tuple[str, ...] = LANGS) -> list[str]:
    role = "user" if index % 2 == 0 else "assistant"
    lines = [f"## {role}", ""]
    if rng.random() < 0.3:
        lines += ["```json msg-metadata", json.dumps({"turn": index, "model": "bench"}), "```", ""]
    if role == "user":
        lines += ["> " + line for line in prose(rng, rng.randint(1, 4))] + [""]
        return lines
    lines += [*prose(rng, rng.randint(1, 3)), ""]
    for _ in range(rng.randint(1, 3)):
        lines += [*code(rng, langs), ""]
        if rng.random() < 0.5:
            lines += [*prose(rng, 1), ""]
    return lines


def generate(
    size: int | None = None, *, messages: int | None = None, langs: tuple[str, ...] = LANGS, seed: int = 7
) -> str:
    """A document of at least ``size`` bytes, or of exactly ``messages`` messages."""
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
    while (size is not None and total < size) or (messages is not None and index < messages):
        chunk = message(rng, index, langs)
        lines += chunk
        total += sum(len(line) + 1 for line in chunk)
        index += 1
    return "\n".join(lines) + "\n"


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
    command = [*console_script(), "import", str(path), "-q"]
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "DOMARKX_HOME": home}
        start = time.perf_counter()
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def measure(size_mb: float, repeat: int, cli: bool) -> dict[str, Any]:
    """Medians of raw parse, import (build, save) and, with ``cli``, ``domarkx import`` end to end."""
    text = generate(int(size_mb * 1_000_000))
    data = text.encode("utf-8")
    md = MarkdownIt("commonmark")
    raw, build, save, cli_times = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.md"
        path.write_bytes(data)
        messages = import_once(data, path)[2]  # a warm-up run: imports, caches, page cache
        md.parse(text)
        for _ in range(repeat):  # interleaved, so drift affects both sides alike
            raw.append(timed(lambda: md.parse(text)))
            b, s, _ = import_once(data, path)
            build.append(b)
            save.append(s)
            if cli:
                cli_times.append(cli_import_once(path))
    total = [b + s for b, s in zip(build, save, strict=True)]
    base = statistics.median(raw)
    return {
        "bench": "import",
        "bytes": len(data),
        "messages": messages,
        "repeat": repeat,
        "raw_parse_s": base,
        "import_s": statistics.median(total),
        "build_s": statistics.median(build),
        "save_s": statistics.median(save),
        "cli_import_s": statistics.median(cli_times) if cli_times else None,
        "ratio": statistics.median(total) / base,
        "cli_ratio": statistics.median(cli_times) / base if cli_times else None,
        "target": TARGET,
    }


def figures(quick: bool = False) -> dict[str, Any]:
    """Import of a 10 MB document (1 MB when ``quick``) against raw markdown-it parsing."""
    result = measure(1.0 if quick else 10.0, 3 if quick else 5, cli=True)
    size = f"{result['bytes'] / 1e6:.0f} MB, {result['messages']} messages"
    baseline = "raw markdown-it parse"
    rows = [
        row(
            f"import ({size})",
            result["import_s"],
            baseline=baseline,
            baseline_s=result["raw_parse_s"],
            max_ratio=TARGET,
        ),
        row("  of which: build (parse, macros, hash)", result["build_s"]),
        row("  of which: save (store)", result["save_s"]),
        row(
            "cli import (start-up included)",
            result["cli_import_s"],
            baseline=baseline,
            baseline_s=result["raw_parse_s"],
        ),
    ]
    return {"area": "Import", "rows": rows, "details": result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=10.0, help="document size (default 10)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement (default 5)")
    parser.add_argument("--no-cli", action="store_true", help="skip the end-to-end command-line run")
    args = parser.parse_args(argv)
    result = measure(args.size_mb, args.repeat, cli=not args.no_cli)
    base = result["raw_parse_s"]
    rows = [
        ("raw parse (markdown-it)", base),
        ("import: build", result["build_s"]),
        ("import: save", result["save_s"]),
        ("import", result["import_s"]),
    ]
    if result["cli_import_s"] is not None:
        rows.append(("cli import (end to end)", result["cli_import_s"]))
    print(f"document: {result['bytes'] / 1e6:.1f} MB, {result['messages']} messages, {args.repeat} runs, medians")
    print(f"{'':26}{'seconds':>10}{'× raw':>10}")
    for name, median in rows:
        print(f"{name:26}{median:10.3f}{median / base:10.2f}")
    verdict = "ok" if result["ratio"] <= TARGET else "over target"
    print(f"import / raw parse = {result['ratio']:.2f} (target ≤ {TARGET}: {verdict})")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
