"""Property tests: generated documents round-trip, and no input escapes as anything but a DocumentError."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domarkx.data.models import ROLES, SessionSnapshot
from domarkx.data.store import Store
from domarkx.errors import DocumentError
from domarkx.parsing.markdown import MarkdownParser, decode, line_offsets
from domarkx.session.snapshot import SnapshotManager

PARSER = MarkdownParser()
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any character but surrogates and line breaks, weighted towards Markdown's own punctuation.
_ANY = st.characters(exclude_categories=["Cs"], exclude_characters="\r\n")
_MARKDOWN = st.sampled_from(list("#>`~-*_ \t[]()!<\\|=+0123456789"))
_CHARS = st.one_of(_ANY, _MARKDOWN, st.sampled_from(list("abcdefg xyz")))
_LINE = st.text(_CHARS, max_size=24)
_LINES = st.lists(_LINE, min_size=1, max_size=4)


_MESSAGE_HEADING = st.sampled_from(ROLES).flatmap(lambda r: st.sampled_from([f"## {r}", f"## {r.title()}"]))


def _role_heading() -> st.SearchStrategy[list[str]]:
    """Headings that may or may not start a message."""
    word = st.one_of(
        st.sampled_from(ROLES).flatmap(lambda r: st.sampled_from([r, r.upper(), r.title()])),
        st.sampled_from(["notes", "User:", "users", ""]),
    )
    prefix = st.sampled_from(["## ", "##\t", " ## ", "### ", "# ", "##"])
    return st.tuples(prefix, word, st.sampled_from(["", " ##", " trailing words"])).map(lambda t: ["".join(t)])


@st.composite
def _fence(draw: st.DrawFn) -> list[str]:
    char = draw(st.sampled_from("`~"))
    length = draw(st.integers(3, 6))
    info = draw(st.one_of(st.just(""), _LINE, st.sampled_from(["python", "bash name=a.sh", "json msg-metadata"])))
    if char == "`":
        info = info.replace("`", "")
    body = draw(st.lists(st.one_of(_LINE, st.just(char * (length - 1)), st.just("## user")), max_size=5))
    indent = draw(st.sampled_from(["", " ", "   "]))
    closing = draw(
        st.one_of(
            st.just([indent + char * length]),
            st.integers(1, 3).map(lambda extra: [char * (length + extra)]),
            st.just([]),  # unclosed: a DocumentError by design
        )
    )
    return [indent + char * length + info, *body, *closing]


_PIECES = st.one_of(
    _LINES,  # a paragraph
    _LINES.map(lambda lines: ["> " + line for line in lines]),  # a blockquote
    _LINES.map(lambda lines: ["    " + line for line in lines]),  # indented code
    _fence(),
    _role_heading(),
    _MESSAGE_HEADING.map(lambda line: [line]),
    _MESSAGE_HEADING.map(lambda line: [line]),
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines: list[str] = []
    if draw(st.booleans()):
        title = draw(st.one_of(st.from_regex(r"[A-Za-z0-9 ]{0,20}", fullmatch=True), _LINE))
        lines += ["---", f"title: {title}", "---", ""]
    if draw(st.booleans()):
        config = draw(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3))
        lines += ["```session-config", json.dumps(config), "```", ""]
    for piece in draw(st.lists(_PIECES, max_size=10)):
        lines += [*piece, ""]
    mode = draw(st.sampled_from(["lf", "crlf", "mixed"]))
    endings = {"lf": st.just("\n"), "crlf": st.just("\r\n"), "mixed": st.sampled_from(["\n", "\r\n", "\r"])}[mode]
    eols = draw(st.lists(endings, min_size=len(lines), max_size=len(lines)))
    text = "".join(line + eol for line, eol in zip(lines, eols, strict=True))
    if text and draw(st.booleans()):
        text = text.rstrip("\r\n")
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text


def check_structure(text: str, snapshot: SessionSnapshot) -> None:
    """What a successful parse promises: the text kept, messages tiling the body in order."""
    assert snapshot.document == text
    offsets = line_offsets(text)
    nlines = len(offsets) - 1
    edges = [snapshot.preamble_end] + [m.end for m in snapshot.messages]
    assert edges[-1] == nlines
    for message, start in zip(snapshot.messages, edges, strict=False):
        assert message.start == start
        chunk = text[offsets[message.start] : offsets[message.end]]
        heading = rf"\ufeff? {{0,3}}##[ \t]+{message.role}(?:[ \t]|\r|\n|$)"
        assert re.match(heading, chunk, re.IGNORECASE), chunk[:40]
        for block in message.blocks:
            assert message.start < block.start < block.end <= message.end


@SETTINGS
@given(documents())
def test_generated_documents_parse_losslessly_or_fail_cleanly(text: str) -> None:
    try:
        snapshot = PARSER.parse(text, path="gen.md")
    except DocumentError as err:
        line = err.format()
    else:
        check_structure(text, snapshot)
        return
    assert line.startswith("gen.md:")
    assert "\n" not in line


@SETTINGS
@given(st.text())
def test_any_text_raises_only_document_errors(text: str) -> None:
    try:
        snapshot = PARSER.parse(text)
    except DocumentError:
        return
    check_structure(text, snapshot)


@SETTINGS
@given(st.binary())
def test_any_bytes_raise_only_document_errors(data: bytes) -> None:
    try:
        text = decode(data, "bytes.md")
        PARSER.parse(text, path="bytes.md")
    except DocumentError:
        pass


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnapshotManager]:
    with Store(tmp_path_factory.mktemp("property-store")) as store:
        yield SnapshotManager(store)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_import_then_export_is_byte_identical(manager: SnapshotManager, text: str) -> None:
    data = text.encode("utf-8")
    try:
        snapshot = manager.build(data, path="gen.md", base_dir=Path.cwd())
    except DocumentError:
        return
    manager.save(snapshot)

    assert manager.document(snapshot.id).encode("utf-8") == data
    again = manager.build(data, path="elsewhere.md", base_dir=Path.cwd())
    assert again.id == snapshot.id
    assert not manager.save(again)
    stored = manager.get(snapshot.id)
    assert stored.model_dump(exclude={"source"}) == snapshot.model_dump(exclude={"source"})
