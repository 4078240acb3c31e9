"""The CommonMark spec examples, for corpus tests.

No wheel on PyPI ships them (commonmark, marko, mistletoe, mistune, mdformat,
markdown-it-py, mdit-py-plugins, cmarkgfm, pyromark, multimark, mordant,
markdown-it-pyrs, pycmark and others were checked), and vendoring the spec is not
allowed. The sdist of markdown-it-py — already our parser — does ship
``tests/test_cmark_spec/commonmark.json``: exactly the examples that parser is
tested against. So the examples come from the sdist of the installed
markdown-it-py version, fetched once with pip (the project's own registry
client, as for any dev dependency) into pytest's cache.

``DOMARKX_COMMONMARK_SPEC`` may name a ``commonmark.json`` to use instead (for
machines that prepare it ahead of time). Run this file to fetch it ahead of
time: ``python tests/parsing/commonmark_spec.py DIR``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ENV = "DOMARKX_COMMONMARK_SPEC"
_MEMBER = "tests/test_cmark_spec/commonmark.json"


@dataclass(frozen=True)
class Example:
    number: int
    section: str
    markdown: str

    @property
    def id(self) -> str:
        slug = "-".join(self.section.lower().split())
        return f"ex{self.number:03d}-{slug}"


def fetch(directory: Path) -> Path:
    """Extract markdown-it-py's copy of the spec examples into ``directory``."""
    mdit = version("markdown-it-py")
    target = directory / f"commonmark-{mdit}.json"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary=:all:",
            "--dest", tmp, f"markdown-it-py=={mdit}",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        archives = list(Path(tmp).glob("markdown_it_py-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise RuntimeError(
                f"cannot fetch the CommonMark examples (markdown-it-py {mdit} sdist): {done.stderr.strip()}\n"
                f"set {ENV} to a commonmark.json, or run: python tests/parsing/commonmark_spec.py DIR"
            )
        with tarfile.open(archives[0]) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith(_MEMBER))
            extracted = archive.extractfile(member)
            assert extracted is not None
            data = extracted.read()
    directory.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def load(cache_dir: Path) -> list[Example]:
    path = Path(os.environ[ENV]) if os.environ.get(ENV) else fetch(cache_dir)
    entries = json.loads(path.read_text(encoding="utf-8"))
    return [Example(int(e["example"]), str(e["section"]), str(e["markdown"])) for e in entries]


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
