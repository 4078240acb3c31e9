"""Coverage-guided fuzzing of the import path with atheris (libFuzzer), beyond the hypothesis tests.

Each input is taken as a document's bytes and imported the way ``domarkx import``
does it — decoded, macros expanded against a small directory of files, parsed —
without storing. The same promise as ``tests/fuzz`` is checked: an accepted
document is its own expansion's fixed point (importing its export gives the same
snapshot and structure), and a refused one is a :class:`DocumentError` whose line
lies inside the document. Anything else crashes the fuzzer with the input saved.

Run it for a bounded time, with the examples as seeds::

    pip install atheris
    mkdir -p /tmp/domarkx-corpus && cp examples/*.md docs/*.md /tmp/domarkx-corpus/
    python fuzz/atheris_parser.py /tmp/domarkx-corpus -max_total_time=60 -print_final_stats=1

libFuzzer writes inputs that reach new code into the corpus directory and prints
the number of executions (``stat::number_of_executed_units``) at the end.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["domarkx"]):
    from domarkx.data.store import Store
    from domarkx.errors import DocumentError
    from domarkx.parsing.markdown import MarkdownParser, line_offsets
    from domarkx.session.snapshot import SnapshotManager

PATH = "fuzz.md"


def _base_dir() -> Path:
    """A document directory with files to include and links that lead out of it."""
    base = Path(tempfile.mkdtemp(prefix="domarkx-atheris-")) / "doc"
    (base / "sub").mkdir(parents=True)
    (base / "notes.md").write_text("line one\nline two\nline three\n")
    (base / "code.md").write_text("```python name=hello\nprint('hi')\n```\n")
    (base / "sub" / "inner.md").write_text("## user\n\ninner\n")
    (base / "link_out").symlink_to("/")
    return base


BASE = _base_dir()
STORE = Store(BASE.parent / "home")
MANAGER = SnapshotManager(STORE, MarkdownParser())


def _structure(snapshot: object) -> str:
    return json.dumps(snapshot.model_dump(mode="json", exclude={"id", "source"}), sort_keys=True)  # type: ignore[attr-defined]


def test_one_input(data: bytes) -> None:
    try:
        snapshot = MANAGER.build(data, path=PATH, base_dir=BASE)
    except DocumentError as err:
        try:
            lines = len(line_offsets(data.decode("utf-8"))) - 1
        except UnicodeDecodeError:
            lines = data.count(b"\n") + 1
        if not 1 <= err.line <= lines + 1 or "\n" in err.format():
            raise AssertionError(f"error outside the document ({lines} lines): {err.format()!r}") from err
        return
    again = MANAGER.build(snapshot.document.encode("utf-8"), path=PATH, base_dir=BASE)
    if again.id != snapshot.id or _structure(again) != _structure(snapshot):
        raise AssertionError("importing the export gave another snapshot")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    os.environ.setdefault("DOMARKX_HOME", str(BASE.parent / "home"))
    main()
