"""Macro expansion: syntax, literal regions, variables, include and its confinement, handlers."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from domarkx import _entrypoints
from domarkx.data.store import Store
from domarkx.errors import DocumentError, DomarkxError, UsageError
from domarkx.parsing.macros import MacroCall, MacroExpander, _Scan, find_macros, is_macro_line
from domarkx.parsing.markdown import line_offsets
from domarkx.session.snapshot import SnapshotManager


def expand(text: str, base: Path, **kwargs: object) -> str:
    return MacroExpander(**kwargs).expand(text, path="doc.md", base_dir=base)  # type: ignore[arg-type]


def error_of(text: str, base: Path, **kwargs: object) -> DocumentError:
    with pytest.raises(DocumentError) as info:
        expand(text, base, **kwargs)
    return info.value


# --------------------------------------------------------------------------- syntax


def test_query_and_trailing_link_params_reach_the_handler(tmp_path: Path) -> None:
    seen: list[MacroCall] = []

    def record(call: MacroCall) -> str:
        seen.append(call)
        return "X"

    text = "a\nb [@the text](domarkx://rec?a=1&b=two%20words)[c](free text, with = & ?)[d](<has (parens)>) c\n"
    assert MacroExpander(handlers={"rec": record}).expand(text, path="p.md", base_dir=tmp_path) == "a\nb X c\n"
    (call,) = seen
    assert call.command == "rec"
    assert call.text == "the text"
    assert dict(call.params) == {"a": "1", "b": "two words", "c": "free text, with = & ?", "d": "has (parens)"}
    ctx = call.context
    assert (ctx.path, ctx.base_dir, ctx.line, ctx.col, ctx.allow_outside) == ("p.md", tmp_path, 2, 3, False)


def test_query_plus_is_not_a_space(tmp_path: Path) -> None:
    assert expand("[@x](domarkx://var?name=x&default=a+b)", tmp_path) == "a+b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[@x](domarkx://var?name=a&name=b)", "parameter 'name' twice"),
        ("[@x](domarkx://var?name=a)[name](b)", "parameter 'name' twice"),
        ("[@x](domarkx://var?=a)", "parameter with no name"),
        ("[@x](domarkx://var)[ ](a)", "parameter with no name"),
        ("[@x](domarkx://9lives)", "'9lives' is not a macro name"),
        ("[@x](domarkx://)", "'' is not a macro name"),
    ],
)
def test_malformed_params_are_errors_at_the_macro(tmp_path: Path, text: str, message: str) -> None:
    err = error_of("first line\n  " + text, tmp_path)
    assert message in err.message
    assert (err.line, err.col) == (2, 3)


@pytest.mark.parametrize(
    "text",
    [
        "see [docs](domarkx://var?name=a)",  # no @
        "see [@a [b]](domarkx://var)",  # brackets in the text
        "see [@a](domarkx://var?name=a b)",  # a space in the query
    ],
)
def test_a_domarkx_link_that_is_not_a_macro_is_an_error(tmp_path: Path, text: str) -> None:
    err = error_of("x\n" + text, tmp_path)
    assert "malformed macro" in err.message
    assert err.line == 2
    assert err.col == text.index("[") + 1
    assert err.hint is not None and "`code`" in err.hint


def test_unknown_macro_names_the_known_ones(tmp_path: Path) -> None:
    err = error_of("# Title\n\nSome text [@x](domarkx://nope?a=1) here\n", tmp_path)
    assert err.format() == "doc.md:3:11: error: unknown macro 'nope'"
    assert err.hint == "known macros: include, set, var"
    assert err.exit_code == 2


def test_replacement_text_is_not_scanned_again(tmp_path: Path) -> None:
    inner = "[@y](domarkx://var?name=secret)"
    fenced = expand("[@v](domarkx://var?fence=text)", tmp_path, variables={"v": inner})
    assert fenced == f"```text\n{inner}\n```"


def test_replacement_text_that_would_expand_on_the_next_import_is_refused(tmp_path: Path) -> None:
    """The snapshot's document is the expanded text: a live macro in it would expand when it is imported again."""
    inner = "[@y](domarkx://var?name=secret)"
    err = error_of("first\n\nsay [@v](domarkx://var)\n", tmp_path, variables={"v": f"one\n{inner}"})
    assert (err.line, err.col) == (3, 5)
    assert "imported again" in err.message and "line 2 of the text the macro on line 3 inserted" in err.message
    malformed = error_of("[@v](domarkx://var)\n", tmp_path, variables={"v": "[y](domarkx://var)"})
    assert "malformed macro" in malformed.message


def test_a_macro_that_yields_nothing_alone_on_its_line_takes_the_line(tmp_path: Path) -> None:
    text = "a\n  [@d](domarkx://set?x=1)  \nb [@d](domarkx://set?y=2)\r\n[@d](domarkx://set?z=3)\r\nc [@x](domarkx://var)\n"
    assert expand(text, tmp_path) == "a\nb \r\nc 1\n"


def test_is_macro_line() -> None:
    assert is_macro_line("  [@d](domarkx://set)[a](1)\t")
    assert not is_macro_line("x [@d](domarkx://set)")
    assert not is_macro_line("[@d](domarkx://set) [@d](domarkx://set)")


# --------------------------------------------------------------------------- literal regions

M = "[@v](domarkx://var?default=VALUE)"


@pytest.mark.parametrize(
    "text",
    [
        f"```\n{M}\n```\n",
        f"~~~ md\n{M}\n~~~\n",
        f"````\n```\n{M}\n````\n",  # a shorter fence does not close a longer one
        f"~~~\n```\n{M}\n~~~\n",  # nor does the other character
        f"```\n{M}\n",  # an unclosed fence runs to the end
        f"para\n\n    {M}\n",  # indented code
        f"\t{M}\n",
        f"`{M}`\n",
        f"``a ` {M}``\n",
        f"`a\n{M}`\n",  # a code span may cross lines within its paragraph
        f"<!-- {M} -->\n",
        f"a <!-- b\n{M} --> c\n",
        f"<!--\n\n{M}\n\n-->\n",  # an HTML comment block spans blank lines
        f"> ```\n> {M}\n> ```\n",
        f"- item\n\n  ```\n  {M}\n  ```\n",
        f"- item\n\n      {M}\n",  # indented code inside a list item
        f"-\n\n    {M}\n",  # an item that starts empty ends at the blank line
        f"\\{M}\n",  # an escaped bracket is no link
    ],
)
def test_macros_in_code_and_comments_are_left_as_written(tmp_path: Path, text: str) -> None:
    assert expand(text, tmp_path) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"para\n    {M}\n", "para\n    VALUE\n"),  # continues the paragraph, not code
        (f"- item\n\n    {M}\n", "- item\n\n    VALUE\n"),  # a paragraph of the item
        (f"> quote\n{M}\n", "> quote\nVALUE\n"),
        (f"```\ncode\n```\n{M}\n", "```\ncode\n```\nVALUE\n"),
        (f"`code` {M} `more`\n", "`code` VALUE `more`\n"),
        (f"a ` b\n\n{M} c\n", "a ` b\n\nVALUE c\n"),  # an unmatched backtick hides nothing
        (f"\\`{M}`\n", "\\`VALUE`\n"),  # an escaped backtick opens no span
        (f"\\\\{M}\n", "\\\\VALUE\n"),  # an escaped backslash escapes nothing else
        (f"a <!-- b\n\n{M} --> c\n", "a <!-- b\n\nVALUE --> c\n"),  # an inline comment stays in its paragraph
    ],
)
def test_macros_outside_code_expand(tmp_path: Path, text: str, expected: str) -> None:
    assert expand(text, tmp_path) == expected


def test_a_fence_flagged_macros_expands_inside(tmp_path: Path) -> None:
    text = f"```yaml macros name=x\nkey: {M}\n```\n```yaml\nkey: {M}\n```\n```yaml macros=no\n{M}\n```\n"
    expected = f"```yaml macros name=x\nkey: VALUE\n```\n```yaml\nkey: {M}\n```\n```yaml macros=no\n{M}\n```\n"
    assert expand(text, tmp_path) == expected


def test_front_matter_after_set_lines_is_plain_text(tmp_path: Path) -> None:
    text = "[@d](domarkx://set?t=Hi)\n---\ntitle: x\n\n    indented: [@t](domarkx://var)\n---\nbody\n"
    assert expand(text, tmp_path) == "---\ntitle: x\n\n    indented: Hi\n---\nbody\n"


_MD = MarkdownIt("commonmark")


def _code_lines(text: str) -> tuple[set[int], set[int]]:
    """Code and comment lines by the block scan (white box), and by markdown-it's tokens.

    Blank lines are left out: whether they count as code changes nothing for a macro.
    """
    offsets = line_offsets(text)
    scan = _Scan(text, offsets)
    for i in range(len(offsets) - 1):
        scan.line(i)
    literal = set(scan.literal)
    ours = {i for i in range(len(offsets) - 1) if (offsets[i], offsets[i + 1]) in literal}
    theirs: set[int] = set()
    for tok in _MD.parse(text):
        if tok.map and (tok.type in ("fence", "code_block") or tok.content.lstrip().startswith("<!--")):
            theirs.update(range(*tok.map))
    blank = {i for i, line in enumerate(text.split("\n")) if not line.strip(" >")}
    return ours - blank, theirs - blank


LINES = [
    "text", "    indented", "      six", "\tcode", "```", "```py", "~~~", "````", "``` x ` y",
    "> ```", "> text", ">", ">     code", "> ~~~", "- item", "  ```", "   ```", "- ```", "1. item",
    "2. item", "  text", "   - nested", "    - deep", "# h", "---", "***", "===", "<!--", "-->", "-",
    "", "a <!-- b",
]  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(LINES), max_size=8))
def test_code_regions_agree_with_markdown_it(lines: list[str]) -> None:
    """The light scan finds the same code lines as the parser does (quotes in list items excepted)."""
    ours, theirs = _code_lines("\n".join(lines) + "\n")
    assert ours == theirs


@pytest.fixture(scope="module")
def spec_examples(request: pytest.FixtureRequest) -> list[str]:
    from commonmark_spec import load

    cache = getattr(request.config, "cache", None)
    directory = cache.mkdir("commonmark-spec") if cache else Path(tempfile.gettempdir()) / "domarkx-commonmark"
    try:
        return [e.markdown for e in load(Path(directory))]
    except RuntimeError as exc:
        pytest.skip(str(exc))


def test_code_regions_agree_with_markdown_it_on_the_commonmark_spec(spec_examples: list[str]) -> None:
    """Raw HTML blocks other than comments are a documented limit of the scan, so they are left out."""
    differ = []
    for text in spec_examples:
        if any(t.type == "html_block" and not t.content.lstrip().startswith("<!--") for t in _MD.parse(text)):
            continue
        ours, theirs = _code_lines(text)
        if ours != theirs:
            differ.append((text, sorted(ours), sorted(theirs)))
    assert differ == []


# --------------------------------------------------------------------------- variables


def test_var_reads_set_and_given_values(tmp_path: Path) -> None:
    text = "[@d](domarkx://set)[who](Ada)[n](3)\n[@who](domarkx://var) has [@x](domarkx://var?name=n)\n"
    assert expand(text, tmp_path) == "Ada has 3\n"


def test_given_values_win_over_set(tmp_path: Path) -> None:
    text = "[@d](domarkx://set?who=Ada)\n[@who](domarkx://var)\n"
    assert expand(text, tmp_path, variables={"who": "Grace"}) == "Grace\n"


def test_set_holds_from_where_it_stands(tmp_path: Path) -> None:
    text = "[@a](domarkx://var?name=a&default=before) [@d](domarkx://set?a=one) [@a](domarkx://var)"
    text += " [@d](domarkx://set?a=two) [@a](domarkx://var)"
    assert expand(text, tmp_path) == "before  one  two"


def test_var_default_and_fence(tmp_path: Path) -> None:
    text = "[@cmd](domarkx://var?default=ls%20-la&fence=bash)\n"
    assert expand(text, tmp_path) == "```bash\nls -la\n```\n"
    assert expand(text, tmp_path, variables={"cmd": "echo ```"}) == "````bash\necho ```\n````\n"


def test_an_unset_variable_is_an_error_with_the_ways_to_set_it(tmp_path: Path) -> None:
    err = error_of("x\n  [@goal](domarkx://var)\n", tmp_path)
    assert err.format() == "doc.md:2:3: error: var: variable 'goal' is not set"
    assert err.hint is not None and "--set goal=VALUE" in err.hint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[@](domarkx://var)", "which variable?"),
        ("[@1x](domarkx://var)", "'1x' is not a valid variable name"),
        ("[@x](domarkx://var?nmae=x)", "unknown parameter 'nmae'"),
        ("[@d](domarkx://set)", "nothing to set"),
        ("[@d](domarkx://set?a%20b=1)", "'a b' is not a valid variable name"),
    ],
)
def test_variable_macro_misuse(tmp_path: Path, text: str, message: str) -> None:
    assert message in error_of(text, tmp_path).message


def test_a_given_variable_the_document_never_uses_is_reported(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=re.escape("--set projct: doc.md has no variable 'projct'")):
        expand("[@project](domarkx://var?default=x)", tmp_path, variables={"projct": "acme"})
    with pytest.raises(UsageError, match="no variable 'a'"):
        expand("no macros at all", tmp_path, variables={"a": "1"})
    with pytest.raises(UsageError, match="not a valid variable name"):
        MacroExpander(variables={"bad name": "1"})


# --------------------------------------------------------------------------- include


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """doc/ holds the document's directory; secret.txt sits outside it."""
    doc = tmp_path / "doc"
    (doc / "sub").mkdir(parents=True)
    (doc / "notes.txt").write_text("one\ntwo\nthree\nfour\n", encoding="utf-8")
    (doc / "sub" / "crlf.txt").write_bytes(b"a\r\nb\r\n")
    (doc / "blocks.md").write_text(
        "# Blocks\n\n```python name=setup\nimport os\n```\n\n> ```sql name=query\n> SELECT 1;\n> ```\n",
        encoding="utf-8",
    )
    (tmp_path / "secret.txt").write_text("top secret\n", encoding="utf-8")
    return doc


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("[@n](domarkx://include?path=notes.txt)", "one\ntwo\nthree\nfour"),
        ("[@n](domarkx://include?path=notes.txt&lines=2-3)", "two\nthree"),
        ("[@n](domarkx://include?path=notes.txt&lines=3)", "three"),
        ("[@n](domarkx://include?path=notes.txt&lines=3-)", "three\nfour"),
        ("[@n](domarkx://include?path=notes.txt&lines=-2)", "one\ntwo"),
        ("[@n](domarkx://include?path=./sub/../notes.txt&lines=4)", "four"),
        ("[@n](domarkx://include?path=sub/crlf.txt)", "a\r\nb"),
        ("[@n](domarkx://include?path=blocks.md&block=setup)", "import os"),
        ("[@n](domarkx://include?path=blocks.md&block=query)", "SELECT 1;"),
        ("[@n](domarkx://include?path=blocks.md&index=2)", "SELECT 1;"),
        ("[@n](domarkx://include)[path](notes.txt)[lines](1-2)[fence](text)", "```text\none\ntwo\n```"),
    ],
)
def test_include(tree: Path, macro: str, expected: str) -> None:
    assert expand(f"{macro}\nafter\n", tree) == f"{expected}\nafter\n"


def test_included_text_is_not_expanded(tree: Path) -> None:
    (tree / "inc.md").write_text("`[@x](domarkx://var?name=nope)`\n", encoding="utf-8")
    assert expand("[@i](domarkx://include?path=inc.md)", tree) == "`[@x](domarkx://var?name=nope)`"
    (tree / "live.md").write_text("[@x](domarkx://var?name=nope)\n", encoding="utf-8")
    assert "imported again" in error_of("[@i](domarkx://include?path=live.md)", tree).message


@pytest.mark.parametrize(
    ("macro", "message"),
    [
        ("[@n](domarkx://include)", "missing parameter 'path'"),
        ("[@n](domarkx://include?path=)", "path is empty"),
        ("[@n](domarkx://include?path=notes.txt&line=2)", "unknown parameter 'line'"),
        ("[@n](domarkx://include?path=missing.txt)", "no such file: missing.txt"),
        ("[@n](domarkx://include?path=sub)", "sub is a directory"),
        ("[@n](domarkx://include?path=notes.txt&lines=5)", "the text has only 4 lines"),
        ("[@n](domarkx://include?path=notes.txt&lines=3-2)", "the range is empty"),
        ("[@n](domarkx://include?path=notes.txt&lines=0)", "the range is empty"),
        ("[@n](domarkx://include?path=notes.txt&lines=a-b)", "not a line range"),
        ("[@n](domarkx://include?path=notes.txt&lines=-)", "not a line range"),
        ("[@n](domarkx://include?path=blocks.md&block=nope)", "no fenced block named 'nope'"),
        ("[@n](domarkx://include?path=blocks.md&index=3)", "blocks.md has 2 fenced blocks"),
        ("[@n](domarkx://include?path=blocks.md&index=0)", "blocks.md has 2 fenced blocks"),
        ("[@n](domarkx://include?path=blocks.md&index=1&block=setup)", "not both"),
        ("[@n](domarkx://include?path=notes.txt&fence=a%60b)", "without backticks"),
    ],
)
def test_include_misuse(tree: Path, macro: str, message: str) -> None:
    err = error_of("text\n\n" + macro, tree)
    assert message in err.message
    assert (err.path, err.line, err.col) == ("doc.md", 3, 1)


def test_include_names_the_blocks_there_are(tree: Path) -> None:
    err = error_of("[@n](domarkx://include?path=blocks.md&block=setpu)", tree)
    assert err.hint is not None and "named blocks there: query, setup" in err.hint


def test_include_refuses_two_blocks_of_one_name(tree: Path) -> None:
    (tree / "twice.md").write_text("```sh name=a\n1\n```\n\n```sh name=a\n2\n```\n", encoding="utf-8")
    assert "2 fenced blocks named 'a'" in error_of("[@n](domarkx://include?path=twice.md&block=a)", tree).message


def test_include_refuses_non_utf8(tree: Path) -> None:
    (tree / "latin1.txt").write_bytes(b"ok\ncaf\xe9\n")
    err = error_of("[@n](domarkx://include?path=latin1.txt)", tree)
    assert "latin1.txt is not UTF-8 text (byte 0xe9 on its line 2)" in err.message


@pytest.mark.parametrize("path", ["../../etc/passwd", "../secret.txt", "/etc/passwd", "sub/../../secret.txt"])
def test_include_refuses_paths_outside_the_document_tree(tree: Path, path: str) -> None:
    err = error_of(f"x\n[@n](domarkx://include?path={path})", tree)
    assert f"{path!r} is outside the document's directory" in err.message
    assert (err.line, err.col) == (2, 1)
    assert err.hint is not None and "--allow-outside" in err.hint


@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="needs symlinks")
def test_include_refuses_a_symlink_that_points_out(tree: Path) -> None:
    (tree / "link.txt").symlink_to(tree.parent / "secret.txt")
    (tree / "inner.txt").symlink_to(tree / "notes.txt")
    assert "outside the document's directory" in error_of("[@n](domarkx://include?path=link.txt)", tree).message
    assert expand("[@n](domarkx://include?path=inner.txt&lines=1)", tree) == "one"
    assert expand("[@n](domarkx://include?path=link.txt)", tree, allow_outside=True) == "top secret"


def test_allow_outside_lets_include_leave_the_tree(tree: Path) -> None:
    assert expand("[@n](domarkx://include?path=../secret.txt)", tree, allow_outside=True) == "top secret"


def test_an_error_quoting_a_value_with_line_breaks_stays_one_line(tree: Path) -> None:
    err = error_of("[@n](domarkx://include?path=x%0Ay%E2%80%A8z)", tree)
    assert err.format() == "doc.md:1:1: error: include: no such file: x\\ny\\u2028z"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_include_reads_only_regular_files(tree: Path) -> None:
    """A pipe would block the import for ever, and /dev/zero would fill the memory."""
    os.mkfifo(tree / "pipe")
    assert "pipe is not a regular file" in error_of("[@n](domarkx://include?path=pipe)", tree).message
    err = error_of("[@n](domarkx://include?path=/dev/zero)", tree, allow_outside=True)
    assert "/dev/zero is not a regular file" in err.message


# --------------------------------------------------------------------------- handlers


def test_a_handler_mapping_replaces_the_registry(tmp_path: Path) -> None:
    def upper(call: MacroCall) -> str:
        call.check_params(required=("text",))
        return call.params["text"].upper()

    expander = MacroExpander(handlers={"upper": upper})
    assert expander.expand("[@u](domarkx://upper?text=hi)", path="d", base_dir=tmp_path) == "HI"
    with pytest.raises(DocumentError) as info:
        expander.expand("[@u](domarkx://var?name=x)", path="d", base_dir=tmp_path)
    assert info.value.hint == "known macros: upper"


def test_handler_failures_are_reported_at_the_macro(tmp_path: Path) -> None:
    def usage(call: MacroCall) -> str:
        raise UsageError("no good", hint="try again")

    def crash(call: MacroCall) -> str:
        raise KeyError("boom")

    def number(call: MacroCall) -> str:
        return 42  # type: ignore[return-value]

    expander = MacroExpander(handlers={"usage": usage, "crash": crash, "number": number})
    with pytest.raises(DocumentError) as info:
        expander.expand("\n [@x](domarkx://usage)", path="d.md", base_dir=tmp_path)
    assert (info.value.format(), info.value.hint) == ("d.md:2:2: error: usage: no good", "try again")
    with pytest.raises(DomarkxError, match=r"d.md:1:1: macro 'crash' failed: KeyError"):
        expander.expand("[@x](domarkx://crash)", path="d.md", base_dir=tmp_path)
    with pytest.raises(DomarkxError, match="returned int, not text"):
        expander.expand("[@x](domarkx://number)", path="d.md", base_dir=tmp_path)


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A distribution on sys.path registering a ``shout`` macro, as an installed package would."""
    site = tmp_path / "site"
    info = site / "domarkx_shout-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: domarkx-shout\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[domarkx.macros]\nshout = domarkx_shout:shout\n", encoding="utf-8")
    (site / "domarkx_shout.py").write_text(
        "def shout(call):\n    return call.params.get('text', call.text).upper() + '!'\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(site))
    _entrypoints._group.cache_clear()
    yield
    _entrypoints._group.cache_clear()
    sys.modules.pop("domarkx_shout", None)


@pytest.mark.usefixtures("third_party")
def test_a_third_party_macro_loads_from_its_entry_point(tmp_path: Path) -> None:
    assert expand("[@hello](domarkx://shout) [@x](domarkx://var?name=a&default=b)", tmp_path) == "HELLO! b"
    assert "shout" in error_of("[@x](domarkx://nope)", tmp_path).hint  # type: ignore[operator]


# --------------------------------------------------------------------------- find_macros


def test_find_macros_skips_literal_regions_and_runs_nothing() -> None:
    text = "[@d](domarkx://set?a=1)\n`[@x](domarkx://var)`\n[@b](domarkx://var?default=2)\n"
    sites = list(find_macros(text))
    assert [(s.command, s.params, s.line, s.col) for s in sites] == [
        ("set", {"a": "1"}, 1, 1),
        ("var", {"default": "2"}, 3, 1),
    ]
    assert list(find_macros("no macros")) == []


# --------------------------------------------------------------------------- snapshots


def test_the_same_document_imports_to_the_same_id(tree: Path) -> None:
    doc = "[@d](domarkx://set?who=Ada)\n## user\n\n> Hi [@who](domarkx://var), [@n](domarkx://include?path=notes.txt&lines=1)\n"
    with Store(tree / "store") as store:
        manager = SnapshotManager(store)
        first = manager.build(doc.encode(), path="doc.md", base_dir=tree)
        second = manager.build(doc.encode(), path="other.md", base_dir=tree)
        third = manager.build(doc.encode(), path="doc.md", base_dir=tree, variables={"who": "Grace"})
    assert first.document == "## user\n\n> Hi Ada, one\n"
    assert first.id == second.id != third.id


def test_document_errors_after_expansion_point_into_the_source(tree: Path) -> None:
    """The parser sees the expanded text; its errors must still name the lines the user wrote."""
    with Store(tree / "store") as store:
        manager = SnapshotManager(store)

        def error(doc: str) -> DocumentError:
            with pytest.raises(DocumentError) as info:
                manager.build(doc.encode(), path="doc.md", base_dir=tree)
            return info.value

        below = error("[@n](domarkx://include?path=notes.txt)\n\n```session-config\n{bad\n```\n")
        assert (below.line, below.col) == (4, 2)  # four lines were inserted above it, one removed
        (tree / "config.md").write_text("```session-config\n{bad\n```\n", encoding="utf-8")
        inside = error("x\n\n[@c](domarkx://include?path=config.md)\n")
        assert inside.message.startswith("invalid JSON in session-config")
        assert (inside.line, inside.col) == (3, 1)
        assert inside.message.endswith("(line 2 of the text the macro on line 3 inserted)")


# --------------------------------------------------------------------------- properties

FRAGMENTS = [
    "[@x](domarkx://", "[@", "](domarkx://", "var", "set", "include", "?", "&", "=", "name=x", "default=",
    "path=", "notes.txt", "lines=1-2", ")", "(", "[", "]", "[k](v)", "`", "```", "~~~", "\n", "    ", "> ",
    "- ", "<!--", "-->", "\\", "x", " ", "%20", "domarkx://", "fence=py", "block=a", "index=1", "\r\n", "\t",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.text().filter(lambda t: "domarkx://" not in t))
def test_text_without_macros_is_returned_unchanged(text: str) -> None:
    assert MacroExpander().expand(text, path="p", base_dir=Path()) == text


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=3), max_size=30).map("".join))
def test_expansion_returns_text_or_raises_a_document_error(tree: Path, text: str) -> None:
    try:
        result = MacroExpander().expand(text, path="p", base_dir=tree)
    except DocumentError:
        return
    assert isinstance(result, str)
    if "domarkx://" not in text:
        assert result == text


def test_positions_count_every_line_ending() -> None:
    """Lines are numbered as the parser numbers them: \\r\\n, \\r and \\n each end one."""
    err = error_of("a\r\nb\rc\n[@x](domarkx://nope)", Path())
    assert (err.line, err.col) == (4, 1)
