"""Hypothesis strategies for near-valid domarkx documents.

Documents are built from the parts domarkx reads — front matter, session-config,
workspace-config, msg-metadata and tool-call blocks, messages, macros, fences —
each drawn mostly well-formed and then, some of the time, broken by a small
mutation (a character dropped or inserted, a line cut short or repeated). Random
text rarely gets past the first check; this way most inputs reach the deep paths.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import yaml
from hypothesis import strategies as st

from domarkx.data.models import ROLES

# -- text ---------------------------------------------------------------------------

_ANY = st.characters(exclude_categories=["Cs"], exclude_characters="\r\n")
_PUNCT = st.sampled_from(list("#>`~-*_ \t[]()!<\\|=+:{}\"'&%@?,.0123456789"))
WORD = st.text(st.one_of(_PUNCT, st.sampled_from(list("abcxyz ")), _ANY), max_size=12)
KEYS = st.one_of(
    st.sampled_from(["title", "model", "timeout", "name", "type", "resources", "domarkx-format", "on", "1", ""]), WORD
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.integers(), st.floats(), WORD, st.just(10**30))
VALUES = st.recursive(
    SCALARS, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(KEYS, kids, max_size=3), max_leaves=8
)

_BREAKERS = list(":-[]{}\"'\t&*!|>#,%@`\\ \n")


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """``text``, usually as it is, else broken in one small place."""
    op = draw(st.sampled_from(["keep"] * 4 + ["delete", "insert", "truncate", "repeat", "indent"]))
    if not text or op == "keep":
        return text
    i = draw(st.integers(0, len(text) - 1))
    if op == "delete":
        return text[:i] + text[i + 1 :]
    if op == "insert":
        return text[:i] + draw(st.sampled_from(_BREAKERS)) + text[i:]
    if op == "truncate":
        return text[:i]
    lines = text.split("\n")
    k = draw(st.integers(0, len(lines) - 1))
    if op == "repeat":
        lines.insert(k, lines[k])
    else:
        lines[k] = draw(st.sampled_from([" ", "  ", "\t", "    "])) + lines[k]
    return "\n".join(lines)


def deep(open_: str, close: str) -> st.SearchStrategy[str]:
    """Nesting deep enough to trip a recursive reader."""
    return st.integers(40, 1200).map(lambda n: open_ * n + close * n)


_RAW_YAML = st.lists(
    st.sampled_from(
        [
            "key: value",
            "- item",
            "  nested: [1, 2",
            "anchor: &a {x: 1}",
            "alias: *a",
            "merge: {<<: *a}",
            "data: !!binary /w==",
            "set: !!set {a, b}",
            "obj: !!python/object:os.system echo",
            "on: push",
            "? [complex]",
            ": orphan",
            "when: 2024-01-01",
            "big: 1e999",
            "nan: .nan",
            "\tindented: tab",
            "multi: |",
            "  block text",
            "---",
            "...",
            "%YAML 1.1",
            "'unterminated",
        ]
    ),
    max_size=5,
).map("\n".join)


@st.composite
def yaml_text(draw: st.DrawFn, values: st.SearchStrategy[object]) -> str:
    """YAML for a drawn value (block or flow style), hand-written YAML-ish lines, or deep nesting."""
    kind = draw(st.sampled_from(["dump"] * 7 + ["raw", "raw", "deep"]))
    if kind == "raw":
        return draw(_RAW_YAML)
    if kind == "deep":
        return "x: " + draw(deep("[", "]"))
    text = yaml.safe_dump(draw(values), default_flow_style=draw(st.booleans()), allow_unicode=True, width=60)
    return draw(mutated(text.rstrip("\n")))


@st.composite
def json_text(draw: st.DrawFn, values: st.SearchStrategy[object]) -> str:
    """JSON for a drawn value (NaN and Infinity included), broken now and then, or deeply nested."""
    if draw(st.integers(0, 9)) == 0:
        return '{"x": ' + draw(deep("[", "]")) + "}"
    text = json.dumps(draw(values), ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 2])))
    return draw(mutated(text))


# -- blocks -------------------------------------------------------------------------


@st.composite
def fenced(draw: st.DrawFn, info: str, body: str) -> list[str]:
    """A fence around ``body``; its closing fence is sometimes too short, indented or missing."""
    char = draw(st.sampled_from("``````~"))
    length = draw(st.integers(3, 5))
    if char == "`":
        info = info.replace("`", "")
    opening = char * length
    closings = [opening, opening + char, "   " + opening, char * (length - 1), ""]
    closing = closings[0] if draw(st.integers(0, 2)) < 2 else draw(st.sampled_from(closings))
    return [opening + info, *body.split("\n"), *([closing] if closing else [])]


def front_matter() -> st.SearchStrategy[list[str]]:
    @st.composite
    def build(draw: st.DrawFn) -> list[str]:
        body = draw(yaml_text(st.dictionaries(KEYS, VALUES, max_size=4)))
        if draw(st.booleans()):
            version = draw(st.sampled_from(["1", "1", "2", "0", "-1", "x", "1.0", "null"]))
            body = f"domarkx-format: {version}\n{body}"
        close = draw(st.sampled_from(["---", "---", "...", "--- ", ""]))
        return ["---", *body.split("\n"), *([close] if close else [])]

    return build()


SESSION_INFO = st.sampled_from(["session-config", "json session-config", "session-config a=1", "json  session-config"])


def session_config() -> st.SearchStrategy[list[str]]:
    settings = st.fixed_dictionaries(
        {},
        optional={
            "model": st.sampled_from(["openai:m", "replay:", "nope", ""]) | SCALARS,
            "engine": st.sampled_from(["local_shell", "python", "sqlite", "nope", ""]) | SCALARS,
            "timeout": SCALARS,
            "model_options": st.dictionaries(KEYS, VALUES, max_size=2),
        },
    )
    values = st.one_of(settings, VALUES)
    return st.tuples(SESSION_INFO, json_text(values)).flatmap(lambda t: fenced(*t))


# -- workspace-config -----------------------------------------------------------------

RESOURCE_TYPES = ["local_shell", "python", "sqlite", "docker_sandbox"]
TYPES = st.sampled_from([*RESOURCE_TYPES, "nope", "", "Local_Shell"]) | SCALARS
NAMES = st.sampled_from(["db", "sh", "py-1", "a b", "x" * 41, "__", ""]) | SCALARS
PLUGIN_OPTIONS = {
    "local_shell": ["timeout", "max_timeout", "max_output", "sandbox", "files"],
    "sqlite": ["setup", "timeout", "max_rows"],
    "python": ["timeout", "max_output"],
    "docker_sandbox": ["image", "workdir", "timeout", "max_output", "network", "environment"],
}
PLAUSIBLE = {
    "timeout": st.sampled_from([0.5, 5, 60, 0, -1, 86_401, 1e308, float("inf"), "10"]),
    "max_timeout": st.sampled_from([1, 600, 0]),
    "max_output": st.sampled_from([1000, 200, 100_000, 10**30, 999]),
    "max_rows": st.sampled_from([1, 1000, 0, 10**30]),
    "sandbox": st.sampled_from(["auto", "none", "bwrap", "docker", ""]),
    "files": st.sampled_from(
        [
            {"ok.txt": "hi", "dir/nested.txt": "there"},
            {"../x": "y"},
            {"/etc/x": "y"},
            {".git/config": "x"},
            {"a/.GIT/hooks/x": "x"},
            {"": "x"},
            {"dir": "x", "dir/a": "y"},
            {"ok.txt": 5},
        ]
    ),
    "setup": st.sampled_from(
        [
            "CREATE TABLE t(x); INSERT INTO t VALUES (1);",
            "ATTACH '/etc/passwd' AS p;",
            "VACUUM INTO '/tmp/domarkx-fuzz-escape.db';",
            "SELECT load_extension('x');",
            "not sql at all",
            "",
        ]
    ),
    "image": st.sampled_from(["alpine:3", "", "UPPER/Case"]),
    "workdir": st.sampled_from(["/workspace", "rel", "/a/../b", "/"]),
    "network": st.sampled_from(["none", "host", "bridge"]),
    "environment": st.sampled_from([{"A": "b"}, {"OPENAI_API_KEY": "x"}, {"A": 1}, ["A=b"]]),
}
OPTION_VALUES = st.one_of(VALUES, st.sampled_from([0, -1, 0.001, 1e308, 10**30, "auto", "/abs", "rel"]))


@st.composite
def resource_item(draw: st.DrawFn) -> object:
    """One item of ``resources``: mostly a real type with its own options, sometimes anything at all."""
    # Hypothesis favours small draws, so 0 picks the usual case and a top value the odd one.
    if draw(st.integers(0, 19)) == 19:
        return draw(VALUES)  # not a mapping at all
    kind = draw(TYPES) if draw(st.integers(0, 5)) == 5 else draw(st.sampled_from(RESOURCE_TYPES))
    keys = [*PLUGIN_OPTIONS.get(kind, []), "bogus"] if isinstance(kind, str) else ["bogus"]
    item: dict[object, object] = {}
    for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
        plausible = PLAUSIBLE.get(key)
        odd = plausible is None or draw(st.integers(0, 4)) == 4
        item[key] = draw(OPTION_VALUES) if odd else draw(plausible)
    if draw(st.integers(0, 9)) < 9:
        item["type"] = kind
    if draw(st.integers(0, 3)) == 3:
        item["name"] = draw(NAMES)
    return item


@st.composite
def workspace_value(draw: st.DrawFn) -> object:
    """``{"resources": [...]}`` nine times in ten; else an extra key, a null list or any value."""
    odd = draw(st.integers(0, 9))
    if odd < 7:
        return {"resources": draw(st.lists(resource_item(), max_size=3))}
    if odd == 7:
        return {"resources": draw(st.lists(resource_item(), max_size=2)), "extra": draw(SCALARS)}
    return {"resources": None} if odd == 8 else draw(VALUES)


WORKSPACE_INFO = st.sampled_from(["yaml workspace-config", "workspace-config", "yml workspace-config x=y"])


def workspace_config() -> st.SearchStrategy[list[str]]:
    """A workspace-config block: clean YAML two times in three, else YAML that may be broken."""
    clean = workspace_value().map(lambda v: yaml.safe_dump(v, allow_unicode=True).rstrip("\n"))
    body = st.one_of(clean, clean, yaml_text(workspace_value()))
    closed = st.tuples(WORKSPACE_INFO, body).map(lambda t: ["```" + t[0], *t[1].split("\n"), "```"])
    return st.one_of(closed, closed, st.tuples(WORKSPACE_INFO, body).flatmap(lambda t: fenced(*t)))


# -- message blocks -----------------------------------------------------------------


def msg_metadata() -> st.SearchStrategy[list[str]]:
    info = st.sampled_from(["json msg-metadata", "msg-metadata", "json msg-metadata extra=1"])
    return st.tuples(info, json_text(st.one_of(st.dictionaries(KEYS, VALUES, max_size=3), VALUES))).flatmap(
        lambda t: fenced(*t)
    )


def tool_call() -> st.SearchStrategy[list[str]]:
    ids = st.sampled_from([" id=call_1", " id=", " id='a b'", ""])
    names = st.sampled_from([" name=run_command", " name=", " name=read_file", ""])
    info = st.tuples(ids, names).map(lambda t: "json tool-call" + t[0] + t[1])
    body = json_text(st.one_of(st.dictionaries(KEYS, VALUES, max_size=2), VALUES))
    return st.tuples(info, body).flatmap(lambda t: fenced(*t))


def code_block() -> st.SearchStrategy[list[str]]:
    info = st.one_of(
        st.sampled_from(["", "python", "bash name=a.sh", "sql", "text output", "setup-script", "yaml macros"]), WORD
    )
    body = st.lists(st.one_of(WORD, st.just("## user"), st.just("```"), macro()), max_size=4).map("\n".join)
    return st.tuples(info, body).flatmap(lambda t: fenced(*t))


# -- macros -------------------------------------------------------------------------

INCLUDE_PATHS = [
    "notes.md",
    "code.md",
    "withmacro.md",
    "empty.md",
    "crlf.md",
    "bin.dat",
    "sub",
    "sub/inner.md",
    "missing.md",
    "pipe",
    "../outside.md",
    "/etc/passwd",
    "link_out/etc/passwd",
    "link_up/outside.md",
    "/proc/self/root/etc/passwd",
    "sub/../notes.md",
    "%2e%2e/outside.md",
    "~/x",
    "/dev/zero",
    "a\0b",
    "",
]
_PARAM_VALUES = st.one_of(
    st.sampled_from(INCLUDE_PATHS),
    st.sampled_from(["1", "1-2", "2-", "-1", "0", "3-1", "99", "a", "1-99"]),  # lines, index
    st.sampled_from(["hello", "ticks", "nope"]),  # block names in code.md
    st.sampled_from(["", "python", "text x=1", "a`b", "x\ny"]),  # fence info strings
    st.sampled_from(["title", "owner", "bad name", "[@y](domarkx://var?name=title)"]),
    WORD,
)
_PARAM_KEYS = st.sampled_from(["path", "lines", "block", "index", "fence", "name", "default", "title", "owner", ""])
_COMMANDS = st.sampled_from(["include", "include", "set", "var", "var", "nope", "9bad", "in clude", "x_y-z", ""])


GOOD_MACROS = st.sampled_from(
    [
        "[@n](domarkx://include?path=notes.md)",
        "[@n](domarkx://include?path=notes.md&lines=2-3)",
        "[@n](domarkx://include)[path](notes.md)[fence](text)",
        "[@c](domarkx://include?path=code.md&block=ticks)",
        "[@c](domarkx://include?path=code.md&index=1&fence=python)",
        "[@e](domarkx://include?path=empty.md)",
        "[@e](domarkx://include?path=crlf.md)",
        "[@d](domarkx://set?title=Hello)[owner](Ada Lovelace)",
        "[@title](domarkx://var?default=Untitled)",
        "[@v](domarkx://var?name=owner&default=%60%60%60)",
        "[@v](domarkx://var?name=title&default=x&fence=)",
    ]
)


def macro() -> st.SearchStrategy[str]:
    """A macro link: half of them known to be good, the rest drawn from parts."""
    return st.one_of(GOOD_MACROS, any_macro())


@st.composite
def any_macro(draw: st.DrawFn) -> str:
    """A macro link from random parts; parameters in the query and as trailing ``[key](value)`` links."""
    command = draw(_COMMANDS)
    query = draw(st.lists(st.tuples(_PARAM_KEYS, _PARAM_VALUES), max_size=3))
    encode = draw(st.booleans())
    parts = [f"{quote(k, safe='') if encode else k}={quote(v, safe='') if encode else v}" for k, v in query]
    target = command + ("?" + "&".join(parts) if parts else "")
    trailing = draw(st.lists(st.tuples(_PARAM_KEYS, _PARAM_VALUES), max_size=2))
    after = "".join(f"[{k}](<{v}>)" if draw(st.booleans()) else f"[{k}]({v})" for k, v in trailing)
    at = draw(st.sampled_from(["@", "@", "@", ""]))
    text = draw(st.sampled_from(["x", "title", "", "owner", "a b"]))
    return f"[{at}{text}](domarkx://{target}){after}"


@st.composite
def macro_piece(draw: st.DrawFn) -> list[str]:
    """A macro somewhere: alone on a line, in prose, quoted, listed, escaped, or where it stays literal."""
    m = draw(macro())
    place = draw(
        st.sampled_from(["alone", "alone", "prose", "quote", "list", "escaped", "code-span", "comment", "fence"])
    )
    if place == "alone":
        return [m]
    if place == "prose":
        return [f"Before {m} after."]
    if place == "quote":
        return [f"> {m}"]
    if place == "list":
        return [f"- {m}", f"  1. {m}"]
    if place == "escaped":
        return ["\\" + m]
    if place == "code-span":
        return [f"`{m}` and ``{m}``"]
    if place == "comment":
        return [f"<!-- {m} -->"]
    return draw(fenced(draw(st.sampled_from(["", "yaml macros", "text"])), m))


# -- documents ----------------------------------------------------------------------

HEADINGS = st.sampled_from(ROLES).flatmap(
    lambda r: st.sampled_from([f"## {r}", f"## {r.title()}", f"##\t{r}", f"### {r}", f"## {r}s"])
)
PROSE = st.lists(WORD, min_size=1, max_size=3)


@st.composite
def message(draw: st.DrawFn) -> list[str]:
    parts = [[draw(HEADINGS)]]
    for _ in range(draw(st.integers(0, 3))):
        parts.append(
            draw(
                st.one_of(
                    PROSE,
                    PROSE.map(lambda lines: ["> " + line for line in lines]),
                    PROSE.map(lambda lines: ["    " + line for line in lines]),
                    msg_metadata(),
                    tool_call(),
                    code_block(),
                )
            )
        )
    return [line for part in parts for line in [*part, ""]]


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A whole document with mixed line endings, maybe a BOM and no final newline."""
    pieces: list[list[str]] = []
    if draw(st.booleans()):
        pieces.append(draw(front_matter()))
    preamble = st.one_of(session_config(), workspace_config(), code_block(), PROSE)
    pieces += draw(st.lists(preamble, max_size=3))
    pieces += draw(st.lists(message(), max_size=4))
    if draw(st.booleans()):
        pieces.insert(draw(st.integers(0, len(pieces))), draw(macro_piece()))
    lines = [line for piece in pieces for line in [*piece, ""]]
    mode = draw(st.sampled_from(["lf", "lf", "crlf", "mixed"]))
    endings = {"lf": st.just("\n"), "crlf": st.just("\r\n"), "mixed": st.sampled_from(["\n", "\r\n", "\r"])}[mode]
    eols = draw(st.lists(endings, min_size=len(lines), max_size=len(lines)))
    text = "".join(line + eol for line, eol in zip(lines, eols, strict=True))
    if text and draw(st.booleans()):
        text = text.rstrip("\r\n")
    if draw(st.integers(0, 9)) == 0:
        text = "\ufeff" + text
    return text


VARIABLES = st.one_of(
    st.just({}),
    st.just({}),
    st.dictionaries(st.sampled_from(["title", "owner", "x", "bad name", "1x"]), WORD, max_size=2),
)
"""``--set`` values: mostly none, since a value the document never reads is refused before anything else."""
