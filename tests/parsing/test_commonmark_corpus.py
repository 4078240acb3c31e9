"""Every CommonMark spec example, as a message body, must survive import → export byte for byte.

The only examples the parser may refuse are those that leave a top-level code
fence open until the end of the document: domarkx rejects that by design (an
unclosed fence would swallow every later message), and must say so with a
DocumentError pointing at the line where the fence opened.
"""

from __future__ import annotations

import difflib
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from commonmark_spec import Example, load

from domarkx.data.store import Store
from domarkx.errors import DocumentError
from domarkx.parsing.markdown import MarkdownParser
from domarkx.session.snapshot import SnapshotManager

HEADER = '---\ntitle: CommonMark example {number}\n---\n\n```session-config\n{{"timeout": {number}}}\n```\n\n'
ROLES = ("user", "assistant")
# One example from each of these sections also goes through the command line.
CLI_SECTIONS = ("Tabs", "Fenced code blocks", "HTML blocks", "Link reference definitions", "List items")
_UNCLOSED = re.compile(r"code fence (`{3,}|~{3,}) opened here is never closed")


def _examples(config: pytest.Config) -> list[Example]:
    cache = getattr(config, "cache", None)
    directory = cache.mkdir("commonmark-spec") if cache else Path(tempfile.gettempdir()) / "domarkx-commonmark"
    return load(Path(directory))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "example" in metafunc.fixturenames:
        examples = _examples(metafunc.config)
        if metafunc.function.__name__ == "test_example_through_the_cli":
            examples = [next(e for e in examples if e.section == s) for s in CLI_SECTIONS]
        metafunc.parametrize("example", examples, ids=[e.id for e in examples])
    if "examples" in metafunc.fixturenames:
        metafunc.parametrize("examples", [_examples(metafunc.config)], ids=["all"])


def document(example: Example, role: str) -> str:
    return HEADER.format(number=example.number) + f"## {role}\n\n" + example.markdown


def assert_same(expected: str, actual: str) -> None:
    """Byte-for-byte equality; on failure, a unified diff with line endings made visible."""
    if expected == actual:
        return
    diff = difflib.unified_diff(
        [repr(line) for line in expected.splitlines(keepends=True)],
        [repr(line) for line in actual.splitlines(keepends=True)],
        "imported",
        "exported",
        lineterm="",
    )
    pytest.fail("export differs from the document:\n" + "\n".join(diff), pytrace=False)


def assert_rejected_by_design(err: DocumentError, doc: str) -> None:
    """A refusal must be an unclosed top-level fence, reported where it opened."""
    match = _UNCLOSED.fullmatch(err.message)
    assert match, f"unexpected rejection: {err.format()}"
    opening = doc.splitlines()[err.line - 1]
    assert opening.lstrip(" ").startswith(match.group(1)), f"line {err.line} does not open a fence: {opening!r}"
    assert len(opening) - len(opening.lstrip(" ")) <= 3
    assert err.hint


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnapshotManager]:
    with Store(tmp_path_factory.mktemp("corpus-store")) as store:
        yield SnapshotManager(store)


@pytest.mark.parametrize("role", ROLES)
def test_example_round_trips(example: Example, role: str, manager: SnapshotManager, tmp_path: Path) -> None:
    doc = document(example, role)
    try:
        snapshot = manager.build(doc.encode("utf-8"), path="example.md", base_dir=tmp_path)
    except DocumentError as err:
        assert_rejected_by_design(err, doc)
        return
    manager.save(snapshot)

    assert_same(doc, manager.document(snapshot.id))
    assert snapshot.front_matter == {"title": f"CommonMark example {example.number}"}
    assert snapshot.session_config == {"timeout": example.number}
    assert snapshot.messages[0].role == role
    assert snapshot.messages[0].start == HEADER.format(number=example.number).count("\n")


def test_rejections_are_few_and_all_unclosed_fences(examples: list[Example]) -> None:
    parser = MarkdownParser()
    rejected: list[str] = []
    for example in examples:
        doc = document(example, "user")
        try:
            parser.parse(doc)
        except DocumentError as err:
            assert_rejected_by_design(err, doc)
            rejected.append(f"{example.id}: {err.message}")
    assert len(examples) > 600
    assert len(rejected) <= len(examples) // 100, "\n".join(rejected)


def test_all_examples_in_one_document(examples: list[Example], manager: SnapshotManager, tmp_path: Path) -> None:
    """Hundreds of messages in a row: each example may not disturb the ones after it."""
    parser = MarkdownParser()
    bodies: list[str] = []
    for example in examples:
        try:
            parser.parse(document(example, "user"))
        except DocumentError:
            continue
        bodies.append(f"## {ROLES[example.number % 2]}\n\n{example.markdown}\n")
    doc = HEADER.format(number=1) + "".join(bodies)

    snapshot = manager.build(doc.encode("utf-8"), path="all.md", base_dir=tmp_path)
    manager.save(snapshot)

    assert_same(doc, manager.document(snapshot.id))
    assert len(snapshot.messages) > 1


def test_example_through_the_cli(example: Example, cli: Callable[..., Any], tmp_path: Path) -> None:
    source = tmp_path / "example.md"
    doc = document(example, "user")
    source.write_bytes(doc.encode("utf-8"))

    imported = cli("import", str(source), "-q")
    assert imported.code == 0, imported.err
    snapshot_id = imported.out.splitlines()[-1]
    exported = cli("export", snapshot_id, "-o", str(tmp_path / "out.md"))
    assert exported.code == 0, exported.err

    assert_same(doc, (tmp_path / "out.md").read_bytes().decode("utf-8"))
    assert (tmp_path / "out.md").read_bytes() == source.read_bytes()
