"""Fuzzing the import path: structured, near-valid documents through the macro expander and the parser.

A generated document either imports — and then the stored document is exactly
the expanded text, a re-parse gives the same structure, the store gives back
what was parsed, and importing the export gives the same snapshot — or fails
with a :class:`DocumentError` whose line lies inside the document (or a
:class:`UsageError` about ``--set``). Any other exception is a bug.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import fuzz_budget
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import VARIABLES, documents, macro_piece

from domarkx.data.models import SessionSnapshot
from domarkx.data.store import Store
from domarkx.errors import DocumentError, UsageError
from domarkx.parsing.macros import MacroExpander
from domarkx.parsing.markdown import MarkdownParser, line_offsets
from domarkx.session.snapshot import SnapshotManager

PATH = "fuzz.md"
PARSER = MarkdownParser()


def budget(base: int) -> settings:
    return settings(
        max_examples=fuzz_budget.examples(base),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The document's directory: files to include, and ways out of it that must be refused."""
    root = tmp_path_factory.mktemp("fuzz-docs")
    (root / "outside.md").write_text("outside the document's tree\n")
    base = root / "doc"
    (base / "sub").mkdir(parents=True)
    (base / "notes.md").write_text("line one\nline two\nline three\n")
    (base / "code.md").write_text(
        "# code\n\n```python name=hello\nprint('hi')\n```\n\n"
        "```bash name=hello\necho dup\n```\n\n````text name=ticks\n```\n````\n"
    )
    (base / "withmacro.md").write_text("before [@v](domarkx://var?name=title&default=T) after\n")
    (base / "empty.md").write_text("")
    (base / "crlf.md").write_bytes(b"a\r\nb\r\n")
    (base / "bin.dat").write_bytes(b"ok\n\xff\xfe\x00")
    (base / "sub" / "inner.md").write_text("## user\n\ninner\n")
    os.mkfifo(base / "pipe")
    (base / "link_out").symlink_to("/")
    (base / "link_up").symlink_to("..")
    return base


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnapshotManager]:
    with Store(tmp_path_factory.mktemp("fuzz-store")) as store:
        yield SnapshotManager(store, PARSER)


def structure(snapshot: SessionSnapshot) -> str:
    """What a snapshot says about its document, as comparable text (NaN-safe, unlike ``==``)."""
    return json.dumps(snapshot.model_dump(mode="json", exclude={"id", "source"}), sort_keys=True)


def import_or_fail_cleanly(
    manager: SnapshotManager,
    base_dir: Path,
    text: str,
    variables: Mapping[str, str],
    allow_outside: bool,
    target: str,
) -> None:
    data = text.encode("utf-8")
    try:
        snapshot = manager.build(data, path=PATH, base_dir=base_dir, variables=variables, allow_outside=allow_outside)
    except UsageError as err:  # DocumentError is one
        fuzz_budget.ran(target, check_refusal(err, text))
        return
    check_accepted(manager, base_dir, text, snapshot, variables, allow_outside)
    fuzz_budget.ran(target, "imported")


def check_refusal(err: UsageError, text: str) -> str:
    """A refusal must point into the document in one line, or be about ``--set``; returns its kind."""
    if not isinstance(err, DocumentError):
        assert err.message.startswith("--set "), err.format()  # about the command line, not the document
        return "--set refused"
    nlines = len(line_offsets(text)) - 1
    assert 1 <= err.line <= nlines + 1, (err.format(), nlines)
    assert err.col >= 1
    assert err.path == PATH
    assert "\n" not in err.format(), err.format()
    return "rejected with a line"


def check_accepted(
    manager: SnapshotManager,
    base_dir: Path,
    text: str,
    snapshot: SessionSnapshot,
    variables: Mapping[str, str],
    allow_outside: bool,
) -> None:
    expanded = MacroExpander(variables=variables, allow_outside=allow_outside).expand(
        text, path=PATH, base_dir=base_dir
    )
    assert snapshot.document == expanded
    assert structure(PARSER.parse(snapshot.document, path=PATH)) == structure(snapshot)

    manager.save(snapshot)
    assert manager.document(snapshot.id) == snapshot.document
    assert structure(manager.get(snapshot.id)) == structure(snapshot)

    # import → export → import: a snapshot exports as its document, which imports as the same snapshot
    again = manager.build(manager.document(snapshot.id).encode("utf-8"), path=PATH, base_dir=base_dir)
    assert again.id == snapshot.id
    assert structure(again) == structure(snapshot)


@budget(400)
@given(text=documents(), variables=VARIABLES, allow_outside=st.sampled_from([False, False, False, True]))
def test_documents_import_losslessly_or_fail_with_a_line(
    manager: SnapshotManager, base_dir: Path, text: str, variables: dict[str, str], allow_outside: bool
) -> None:
    import_or_fail_cleanly(manager, base_dir, text, variables, allow_outside, "documents")


@budget(300)
@given(
    pieces=st.lists(macro_piece(), min_size=1, max_size=4),
    variables=VARIABLES,
    allow_outside=st.sampled_from([False, False, True]),
)
def test_macros_expand_or_fail_with_a_line(
    manager: SnapshotManager, base_dir: Path, pieces: list[list[str]], variables: dict[str, str], allow_outside: bool
) -> None:
    text = "".join(line + "\n" for piece in pieces for line in [*piece, ""])
    import_or_fail_cleanly(manager, base_dir, text, variables, allow_outside, "macros")
