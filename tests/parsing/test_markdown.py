"""MarkdownParser: the document conventions of seed 002 on top of CommonMark block structure."""

from __future__ import annotations

import pytest

from domarkx.data.models import FORMAT_VERSION, SessionSnapshot
from domarkx.errors import DocumentError
from domarkx.parsing.markdown import MarkdownParser, decode, line_offsets

# Seed 002, §3.4 "Complete Example", as a document.
SEED_EXAMPLE = """\
---
title: "Domarkx Design Conventions Demo"
---

```session-config
{
  "engine": "local_shell"
}
```

## user

```json msg-metadata
{
  "timestamp": "2023-11-15T14:30:00Z"
}
```

> Can you show me the files in the current directory?

## assistant

> Certainly. Here is the list of files:

```bash name=list_files.sh
ls -la
```
"""


def parse(text: str, path: str = "doc.md") -> SessionSnapshot:
    return MarkdownParser().parse(text, path=path)


def parse_error(text: str, path: str = "doc.md") -> DocumentError:
    with pytest.raises(DocumentError) as info:
        parse(text, path)
    return info.value


def structure(snapshot: SessionSnapshot) -> dict[str, object]:
    """Everything the parser derived, without the document text itself."""
    return snapshot.model_dump(exclude={"document"})


def test_seed_complete_example() -> None:
    snap = parse(SEED_EXAMPLE)

    assert snap.document == SEED_EXAMPLE
    assert snap.front_matter == {"title": "Domarkx Design Conventions Demo"}
    assert snap.title == "Domarkx Design Conventions Demo"
    assert snap.session_config == {"engine": "local_shell"}
    assert snap.setup is None
    assert [m.role for m in snap.messages] == ["user", "assistant"]
    user, assistant = snap.messages
    assert user.metadata == {"timestamp": "2023-11-15T14:30:00Z"}
    assert user.text == "Can you show me the files in the current directory?"
    assert user.code_blocks == []
    assert assistant.text == "Certainly. Here is the list of files:"
    (code,) = assistant.code_blocks
    assert (code.lang, code.attrs, code.text) == ("bash", {"name": "list_files.sh"}, "ls -la\n")


def test_line_ranges_point_into_the_document() -> None:
    snap = parse(SEED_EXAMPLE)
    lines = SEED_EXAMPLE.splitlines(keepends=True)

    assert "".join(lines[: snap.preamble_end]).endswith("```\n\n")
    for message in snap.messages:
        assert lines[message.start] == f"## {message.role}\n"
        for block in message.blocks:
            assert message.start < block.start < block.end <= message.end
    code = snap.messages[1].code_blocks[0]
    assert "".join(lines[code.start : code.end]) == "```bash name=list_files.sh\nls -la\n```\n"
    assert snap.messages[-1].end == len(lines)


def test_front_matter_keeps_dates_as_strings() -> None:
    snap = parse("---\nauthor: Jane Doe\ncreation_date: 2023-11-15\ntags: [domarkx, tutorial]\n---\n")

    assert snap.front_matter == {
        "author": "Jane Doe",
        "creation_date": "2023-11-15",
        "tags": ["domarkx", "tutorial"],
    }
    assert snap.messages == []


def test_empty_front_matter_and_empty_document() -> None:
    assert parse("---\n---\n").front_matter == {}
    empty = parse("")
    assert (empty.document, empty.messages, empty.front_matter) == ("", [], {})


def test_setup_block_follows_session_config() -> None:
    snap = parse('```session-config\n{"timeout": 60}\n```\n\n```python\nimport os\n```\n\n## user\n\nhi\n')

    assert snap.session_config == {"timeout": 60}
    assert snap.setup is not None
    assert (snap.setup.lang, snap.setup.text) == ("python", "import os\n")
    assert snap.messages[0].text == "hi"


def test_setup_script_flag_marks_the_setup_anywhere_in_the_preamble() -> None:
    snap = parse("Intro prose.\n\n```python setup-script\ntools = []\n```\n\n## user\n\nhi\n")

    assert snap.session_config == {}
    assert snap.setup is not None
    assert snap.setup.flags == ["setup-script"]
    assert snap.setup.text == "tools = []\n"


def test_code_block_not_after_session_config_is_not_setup() -> None:
    snap = parse("```session-config\n{}\n```\n\nSome prose.\n\n```python\nx = 1\n```\n")

    assert snap.setup is None


def test_msg_metadata_is_taken_out_of_the_blocks() -> None:
    snap = parse('## assistant\n\n```json msg-metadata\n{"model": "m", "n": [1, 2]}\n```\n\n```sh\nls\n```\n')

    (message,) = snap.messages
    assert message.metadata == {"model": "m", "n": [1, 2]}
    assert [b.lang for b in message.blocks] == ["sh"]


def test_blockquote_and_paragraph_give_the_same_text() -> None:
    quoted = parse("## user\n\n> first line\n> second line\n>\n> after a gap\n")
    plain = parse("## user\n\nfirst line\nsecond line\n")

    assert quoted.messages[0].text == "first line\nsecond line\n\nafter a gap"
    assert plain.messages[0].text == "first line\nsecond line"
    assert [b.kind for b in quoted.messages[0].blocks] == ["text"]


def test_role_headings_are_case_insensitive_and_other_headings_are_content() -> None:
    snap = parse("## User\n\n## Notes\n\n### assistant\n\n# system\n\n## TOOL\n\nout\n")

    assert [m.role for m in snap.messages] == ["user", "tool"]
    assert [b.text for b in snap.messages[0].blocks] == ["## Notes", "### assistant", "# system"]


def test_tilde_fence() -> None:
    snap = parse("## assistant\n\n~~~python name=a.py\nprint('~~~ not the end')\n~~~\n")

    (code,) = snap.messages[0].code_blocks
    assert (code.lang, code.attrs) == ("python", {"name": "a.py"})
    assert code.text == "print('~~~ not the end')\n"


def test_longer_fence_contains_a_shorter_one() -> None:
    doc = "## assistant\n\n````markdown\n```python\nx = 1\n```\n````\n\n## user\n\nok\n"
    snap = parse(doc)

    assert [m.role for m in snap.messages] == ["assistant", "user"]
    (code,) = snap.messages[0].code_blocks
    assert code.lang == "markdown"
    assert code.text == "```python\nx = 1\n```\n"


def test_role_heading_inside_a_fence_is_not_a_heading() -> None:
    doc = "## user\n\n```markdown\n## assistant\n\n> not a message\n```\n\n## assistant\n\ndone\n"
    snap = parse(doc)

    assert [m.role for m in snap.messages] == ["user", "assistant"]
    assert snap.messages[0].code_blocks[0].text == "## assistant\n\n> not a message\n"


def test_role_heading_inside_indented_code_is_not_a_heading() -> None:
    snap = parse("## user\n\nLook:\n\n    ## assistant\n    echo hi\n\nend\n")

    (message,) = snap.messages
    (code,) = message.code_blocks
    assert (code.lang, code.text) == (None, "## assistant\necho hi\n")
    assert message.text == "Look:\n\nend"


def test_crlf_input_has_the_same_structure_as_lf() -> None:
    lf = SEED_EXAMPLE + "\n## user\n\n> two\n> lines\n\nplain\nparagraph\n\n    indented\n"
    crlf = lf.replace("\n", "\r\n")

    snap = parse(crlf)

    assert snap.document == crlf
    assert structure(snap) == structure(parse(lf))


def test_mixed_line_endings_keep_line_numbers() -> None:
    snap = parse("## user\r\n\r\nhi\n## assistant\r\rok\r\n")

    assert [(m.role, m.start, m.end) for m in snap.messages] == [("user", 0, 3), ("assistant", 3, 6)]


def test_byte_order_mark_is_kept_and_ignored() -> None:
    snap = parse("\ufeff" + SEED_EXAMPLE)

    assert snap.document.startswith("\ufeff---")
    assert structure(snap) == structure(parse(SEED_EXAMPLE))


def test_byte_order_mark_before_a_heading() -> None:
    snap = parse("\ufeff## user\n\nhi\n")

    assert [(m.role, m.text) for m in snap.messages] == [("user", "hi")]


def test_workspace_config_with_resources() -> None:
    doc = (
        "```workspace-config\nresources:\n  - type: local_shell\n    name: shell\n    cwd: work\n"
        "  - type: python\n```\n"
    )
    snap = parse(doc)

    assert snap.workspace_config is not None
    shell, python = snap.workspace_config.resources
    assert (shell.type, shell.name, shell.options) == ("local_shell", "shell", {"cwd": "work"})
    assert (python.type, python.name, python.options) == ("python", None, {})


def test_format_version_the_reader_knows() -> None:
    snap = parse(f"---\ndomarkx-format: {FORMAT_VERSION}\n---\n")

    assert snap.front_matter == {"domarkx-format": FORMAT_VERSION}


def test_line_offsets_cover_every_line_ending() -> None:
    text = "a\nb\r\nc\rd"
    offsets = line_offsets(text)

    assert [text[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)] == [
        "a\n",
        "b\r\n",
        "c\r",
        "d",
    ]


# -- errors: one line, the exact place, a hint ----------------------------------


@pytest.mark.parametrize(
    ("doc", "line", "col", "message"),
    [
        pytest.param(
            '```session-config\n{\n  "timeout": 60,\n}\n```\n',
            4,
            1,
            "invalid JSON in session-config: Expecting property name enclosed in double quotes",
            id="session-config-json",
        ),
        pytest.param(
            '## user\n\n```json msg-metadata\n{"a": }\n```\n',
            4,
            7,
            "invalid JSON in msg-metadata: Expecting value",
            id="msg-metadata-json",
        ),
        pytest.param(
            "---\ntitle: [unclosed\nauthor: x\n---\n",
            3,
            7,
            "invalid YAML in front matter",
            id="front-matter-yaml",
        ),
        pytest.param(
            "---\ntitle: a\n  bad: indent\n---\n",
            3,
            6,
            "invalid YAML in front matter: mapping values are not allowed here",
            id="front-matter-yaml-mapping",
        ),
        pytest.param(
            "Intro\n\n```workspace-config\nresources:\n  - type: local_shell\n   name: : x\n```\n",
            6,
            4,
            "invalid YAML in workspace-config",
            id="workspace-config-yaml",
        ),
        pytest.param(
            "```workspace-config\nresources:\n  - type: local_shell\n  - name: x\n```\n",
            4,
            1,
            "workspace-config: resources.1.type: Field required",
            id="resource-without-type",
        ),
        pytest.param(
            "```workspace-config\nresources:\n  - type: local_shell\n  - type: bogus\n```\n",
            4,
            1,
            "unknown resource type 'bogus'",
            id="resource-unknown-type",
        ),
        pytest.param(
            "## user\n\ntext\n\n````python\ncode\n```\n",
            5,
            1,
            "code fence ```` opened here is never closed",
            id="unterminated-backtick-fence",
        ),
        pytest.param(
            "## user\n\n~~~\ncode\n",
            3,
            1,
            "code fence ~~~ opened here is never closed",
            id="unterminated-tilde-fence",
        ),
        pytest.param(
            "---\ntitle: x\n",
            1,
            1,
            "front matter opened here is never closed",
            id="unterminated-front-matter",
        ),
        pytest.param(
            "---\n- a\n- b\n---\n",
            2,
            1,
            "front matter must be a YAML mapping",
            id="front-matter-not-mapping",
        ),
        pytest.param(
            "---\nblob: !!binary aGVsbG8=\n---\n",
            2,
            1,
            "front matter holds a value that is not plain data",
            id="front-matter-not-json-able",
        ),
        pytest.param(
            "```session-config\n[1, 2]\n```\n",
            2,
            1,
            "session-config must be a JSON object, not list",
            id="session-config-not-object",
        ),
        pytest.param(
            "```session-config\n{}\n```\n\n```session-config\n{}\n```\n",
            5,
            1,
            "second session-config block (the first is on line 1)",
            id="second-session-config",
        ),
        pytest.param(
            '## user\n\n```json msg-metadata\n{}\n```\n\n```json msg-metadata\n{"a": 1}\n```\n',
            7,
            1,
            "a message has more than one msg-metadata block",
            id="second-msg-metadata",
        ),
        pytest.param(
            "```python setup-script\na\n```\n\n```sh setup-script\nb\n```\n",
            5,
            1,
            "more than one setup block",
            id="second-setup",
        ),
        pytest.param(
            "```workspace-config\nresources:\n  - type: local_shell\n```\n\n```workspace-config\nresources: []\n```\n",
            6,
            1,
            "second workspace-config block (the first is on line 1)",
            id="second-workspace-config",
        ),
        pytest.param(
            "```workspace-config\nresources:\n  - 3\n```\n",
            3,
            1,
            "workspace-config: resources.0: Input should be a valid dictionary",
            id="resource-not-mapping",
        ),
        pytest.param(
            "```workspace-config\n- type: local_shell\n```\n",
            2,
            1,
            "workspace-config must be a YAML mapping with a resources: list",
            id="workspace-config-not-mapping",
        ),
        # what JSON cannot store as parsed: refused, so the stored snapshot equals the parsed one
        pytest.param(
            '```session-config\n{\n  "t": NaN}\n```\n', 3, 1, "NaN in session-config is not JSON", id="json-nan"
        ),
        pytest.param(
            '## user\n\n```json msg-metadata\n{"t": -Infinity}\n```\n',
            4,
            1,
            "-Infinity in msg-metadata is not JSON",
            id="json-infinity",
        ),
        pytest.param("---\nx: .inf\n---\n", 2, 1, "front matter holds inf", id="yaml-inf"),
        pytest.param("---\nx: !!binary /w==\n---\n", 2, 1, "front matter holds a value that is not", id="yaml-bytes"),
        pytest.param("---\non: push\n---\n", 2, 1, "front matter has a key that is not a string", id="yaml-bool-key"),
        pytest.param(
            "```workspace-config\nresources:\n  - type: local_shell\n    timeout: .nan\n```\n",
            2,
            1,
            "workspace-config holds nan",
            id="workspace-nan",
        ),
        # nesting that would overflow a recursive reader or writer further on
        pytest.param(
            "```session-config\n" + '{"a": ' + "[" * 70 + "]" * 70 + "}\n```\n",
            2,
            1,
            "session-config nests lists or mappings more than 64 levels deep",
            id="json-deep",
        ),
        pytest.param(
            "```session-config\n" + "[" * 5000 + "]" * 5000 + "\n```\n",
            2,
            1,
            "session-config nests arrays or objects too deeply to read",
            id="json-too-deep-to-read",
        ),
        pytest.param(
            "---\nx: " + "[" * 5000 + "]" * 5000 + "\n---\n",
            2,
            1,
            "front matter nests lists or mappings too deeply to read",
            id="yaml-too-deep-to-read",
        ),
        pytest.param(
            "---\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"b{i}: &b{i} [{', '.join([f'*b{i - 1}' if i else '*a'] * 10)}]\n" for i in range(6))
            + "---\n",
            2,
            1,
            "front matter expands to more than",
            id="yaml-billion-laughs",
        ),
    ],
)
def test_document_errors_name_the_place(doc: str, line: int, col: int, message: str) -> None:
    err = parse_error(doc, path="docs/session.md")

    assert (err.path, err.line, err.col) == ("docs/session.md", line, col)
    assert err.message.startswith(message)
    assert err.format() == f"docs/session.md:{line}:{col}: error: {err.message}"
    assert "\n" not in err.format()
    assert err.hint
    assert err.exit_code == 2


def test_crlf_errors_count_lines_the_same_way() -> None:
    err = parse_error('## user\r\n\r\n```json msg-metadata\r\n{"a": }\r\n```\r\n')

    assert (err.line, err.col) == (4, 7)


def test_unknown_resource_type_lists_the_known_ones() -> None:
    err = parse_error("```workspace-config\nresources:\n  - type: bogus\n```\n")

    assert err.hint is not None
    assert err.hint.startswith("known types: ")
    known = err.hint.removeprefix("known types: ").split(", ")
    assert "local_shell" in known
    assert known == sorted(known)


def test_resource_without_type_lists_the_known_ones() -> None:
    err = parse_error("```workspace-config\nresources:\n  - name: x\n```\n")

    assert err.hint is not None
    assert "local_shell" in err.hint


def test_parser_given_resource_types_uses_them() -> None:
    parser = MarkdownParser(resource_types=["only_this"])
    with pytest.raises(DocumentError) as info:
        parser.parse("```workspace-config\nresources:\n  - type: local_shell\n```\n")

    assert info.value.hint == "known types: only_this"


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 99])
def test_newer_format_version_asks_to_upgrade(version: int) -> None:
    err = parse_error(f"---\ntitle: t\ndomarkx-format: {version}\n---\n")

    assert (err.line, err.col) == (2, 1)
    assert f"document format {version} is not supported" in err.message
    assert err.hint is not None
    assert "upgrade domarkx" in err.hint


@pytest.mark.parametrize("version", ["0", "'1'", "-3"])
def test_invalid_format_version_is_an_error(version: str) -> None:
    err = parse_error(f"---\ndomarkx-format: {version}\n---\n")

    assert "is not supported" in err.message


def test_stdin_is_the_default_path() -> None:
    with pytest.raises(DocumentError) as info:
        MarkdownParser().parse("~~~\n")

    assert info.value.format().startswith("<stdin>:1:1: error: ")


# -- decoding -------------------------------------------------------------------


def test_decode_accepts_utf8() -> None:
    assert decode("héllo\n".encode(), "doc.md") == "héllo\n"


def test_decode_names_the_first_bad_byte() -> None:
    data = "line one\nsecond é\n".encode() + b"ab\xff\xfe\n"
    with pytest.raises(DocumentError) as info:
        decode(data, "doc.md")
    err = info.value

    assert (err.line, err.col) == (3, 3)
    assert err.message == "not UTF-8 text (byte 0xff)"
    assert err.hint == "save the document as UTF-8"


def test_decode_latin1_text_fails_at_its_accent() -> None:
    with pytest.raises(DocumentError) as info:
        decode("## user\n\ncafé\n".encode("latin-1"), "doc.md")

    assert (info.value.line, info.value.col) == (3, 4)
