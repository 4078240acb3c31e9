"""Macros: ``[@text](domarkx://command?key=value)`` links, expanded once, at import.

A macro is a Markdown link whose text starts with ``@`` and whose destination uses
the ``domarkx://`` scheme. Parameters come from the query string (percent-encoded)
and from ``[key](value)`` links written directly after it (taken verbatim; use
``[key](<value with (parens)>)`` for a value holding parentheses)::

    [@intro](domarkx://include?path=intro.md&lines=1-5)
    [@defaults](domarkx://set)[title](Weekly report)[owner](Ada)

Expansion is a single pass in document order: each macro is replaced by the text
its handler returns, and that text is never scanned again, so a macro cannot
produce another macro. A macro that expands to nothing and stands alone on its
line takes the line with it, so ``set`` lines leave no blank lines behind.

Macros are literal text (left untouched) where Markdown would not parse a link:
fenced and indented code blocks, inline code spans, and HTML comments. Code
regions come from a line scan that follows CommonMark for fences (``` or ~~~,
at least three, closed by a fence of the same character at least as long),
indented code (four columns past the container, not continuing a paragraph),
block quotes and list items. A fenced block whose info string carries the flag
``macros`` (```` ```yaml macros ````) is the exception: macros inside it expand
(the flag stays, so the output still says so, and a document without macros is
returned exactly as it came). The scan agrees with markdown-it (our
parser) on the CommonMark spec examples except for these known limits, all of
which err toward leaving a macro literal: raw HTML blocks other than comments are
text; a block quote inside a list item is scanned as if it began the line; inline
HTML tags and autolinks do not take precedence over code spans. A code span is
only looked for within one paragraph, so an unbalanced backtick hides nothing
further on.

Handlers are plain callables (:class:`MacroHandler`) registered under the
``domarkx.macros`` entry-point group; the built-in ones (``include``, ``set``,
``var``) live in :mod:`domarkx.parsing.builtin_macros` and are registered the same
way as third-party ones.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote

from domarkx.errors import DocumentError, DomarkxError, UsageError
from domarkx.parsing.fences import parse_info
from domarkx.parsing.markdown import line_offsets

__all__ = [
    "Expansion",
    "MacroCall",
    "MacroContext",
    "MacroExpander",
    "MacroHandler",
    "MacroSite",
    "Variables",
    "find_macros",
    "is_macro_line",
    "valid_name",
]

SCHEME = "domarkx://"

_MACRO = (
    r"\[@(?P<text>[^\[\]\n]*)\]\(domarkx://(?P<target>[^()\s]*)\)"
    r"(?P<params>(?:\[[^\[\]\n]*\]\((?:<[^<>\n]*>|[^()\n]*)\))*)"
)
# A valid macro, or the scheme inside a link that is not one (reported as malformed).
_SCAN_RE = re.compile(rf"{_MACRO}|\]\(domarkx://")
_MACRO_LINE_RE = re.compile(rf"[ \t]*{_MACRO}[ \t]*")
_PARAM_RE = re.compile(r"\[(?P<key>[^\[\]\n]*)\]\((?:<(?P<angle>[^<>\n]*)>|(?P<plain>[^()\n]*))\)")
_COMMAND_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")

_SYNTAX_HINT = (
    "write [@text](domarkx://command?key=value); spaces in a query are %20, or pass "
    "[key](any value) right after the link"
)


def is_macro_line(line: str) -> bool:
    """Whether ``line`` (without its newline) holds exactly one macro and whitespace."""
    return _MACRO_LINE_RE.fullmatch(line) is not None


def valid_name(name: str) -> bool:
    """Variable names: a letter or ``_``, then letters, digits, ``_``, ``.`` or ``-``."""
    return _NAME_RE.match(name) is not None


# --------------------------------------------------------------------------- handler API


class Variables(Mapping[str, str]):
    """Template variables shared by every macro of one expansion.

    Values given by the caller (``--set``) are fixed: ``define`` cannot change them,
    which is what lets a template declare defaults with ``set`` that the command
    line overrides. Reads and definitions are recorded so a ``--set`` the document
    never uses can be reported as the typo it probably is.
    """

    def __init__(self, given: Mapping[str, str]) -> None:
        self._given = dict(given)
        self._values = dict(given)
        self._touched: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self._touched.add(name)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def define(self, name: str, value: str) -> bool:
        """Set ``name`` for the rest of the document; ``False`` if the caller fixed it."""
        self._touched.add(name)
        if name in self._given:
            return False
        self._values[name] = value
        return True

    def unused(self) -> list[str]:
        """Caller-given names no macro read or defined."""
        return sorted(set(self._given) - self._touched)


@dataclass(frozen=True)
class MacroContext:
    """Where a macro sits, and the state it may use."""

    path: str
    """The document's display path, as errors print it."""
    base_dir: Path
    """The directory relative paths resolve against (the document's own)."""
    line: int
    """1-based line of the macro's opening ``[``."""
    col: int
    """1-based column of the macro's opening ``[``."""
    variables: Variables
    allow_outside: bool
    """Whether files outside ``base_dir``'s tree may be read (``--allow-outside``)."""


@dataclass(frozen=True)
class MacroCall:
    """One macro occurrence, as its handler receives it."""

    command: str
    params: Mapping[str, str]
    text: str
    """The link text after the ``@``."""
    context: MacroContext

    def error(self, message: str, *, hint: str | None = None) -> DocumentError:
        """An error pointing at this macro, for the handler to raise."""
        ctx = self.context
        message = f"{self.command}: {message}"
        return DocumentError(message, path=ctx.path, line=ctx.line, col=ctx.col, hint=hint)

    def check_params(self, *, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> None:
        """Reject unknown and missing parameters, so a typo is an error rather than ignored."""
        known = (*required, *optional)
        for key in self.params:
            if key not in known:
                raise self.error(
                    f"unknown parameter {key!r}", hint=f"{self.command} takes: {', '.join(known) or 'none'}"
                )
        for key in required:
            if key not in self.params:
                raise self.error(f"missing parameter {key!r}", hint=f"e.g. domarkx://{self.command}?{key}=…")


class MacroHandler(Protocol):
    """What a macro is: a callable from a :class:`MacroCall` to its replacement text.

    Raise ``call.error(...)`` (a :class:`DocumentError`) for bad use; the text
    returned is inserted as is and never scanned for further macros.
    """

    def __call__(self, call: MacroCall, /) -> str: ...


# --------------------------------------------------------------------------- finding macros


@dataclass(frozen=True)
class MacroSite:
    """A macro found in a document, parsed but not run."""

    start: int
    end: int
    line: int
    col: int
    command: str
    params: dict[str, str]
    text: str


@dataclass
class _Open:
    """A literal block still open: a fence or an HTML comment."""

    kind: str  # "fence" or "comment"
    quotes: int
    base: int
    char: str = ""
    length: int = 0
    expand: bool = False


_QUOTE_RE = re.compile(r" {0,3}> ?")
_FENCE_RE = re.compile(r"(?P<fence>`{3,}|~{3,})(?P<info>.*)")
_CLOSE_RE = re.compile(r"(?P<fence>`{3,}|~{3,}) *\Z")
_LIST_RE = re.compile(r"[-+*]|(?P<num>\d{1,9})[.)]")
_BREAK_RE = re.compile(r"([-*_])(?: *\1){2,} *\Z")
_SETEXT_RE = re.compile(r"(?:=+|-+) *\Z")
_HEADING_RE = re.compile(r"#{1,6}(?: |\Z)")
_INLINE_RE = re.compile(r"`+|<!--")


def _backslashes_before(text: str, pos: int) -> int:
    n = 0
    while pos > n and text[pos - n - 1] == "\\":
        n += 1
    return n


class _Scan:
    """Finds where macros are literal text; see the module docstring for the rules.

    ``run`` returns sorted, non-overlapping ``(start, end)`` character ranges of
    literal text.
    """

    def __init__(self, text: str, offsets: list[int]) -> None:
        self.text = text
        self.offsets = offsets
        self.literal: list[tuple[int, int]] = []
        self.chunks: list[list[int]] = []  # [start, end) of each paragraph or heading
        self.open: _Open | None = None
        self.lists: list[int] = []  # content columns of the enclosing list items
        self.quotes = 0
        self.empty_item = False
        self.prev = "blank"  # what the previous line was: blank | para | other | code

    def run(self) -> list[tuple[int, int]]:
        # Past the last macro, only the paragraph it sits in can still matter (a code span
        # may close there), so a long conversation after a template's header costs nothing.
        last = bisect_right(self.offsets, self.text.rfind(SCHEME)) - 1
        for i in range(self.front_matter_end(), len(self.offsets) - 1):
            if i > last and self.prev != "para":
                break
            self.line(i)
        self.inline()
        return _merge(self.literal)

    def raw(self, i: int) -> str:
        return self.text[self.offsets[i] : self.offsets[i + 1]].rstrip("\r\n")

    def front_matter_end(self) -> int:
        """YAML front matter, after any leading macro-only lines, is plain text: skip it."""
        n = len(self.offsets) - 1
        i = 0
        while i < n and is_macro_line(self.raw(i)):
            i += 1
        if i == n or self.raw(i).lstrip("\ufeff").rstrip() != "---":
            return 0
        for end in range(i + 1, n):
            if self.raw(end).rstrip() in ("---", "..."):
                return end + 1
        return 0

    def mark(self, i: int) -> None:
        self.literal.append((self.offsets[i], self.offsets[i + 1]))

    def line(self, i: int) -> None:
        raw = self.raw(i)
        if self.open is None and not self.lists and not self.quotes:
            first = raw[:1]  # the common case, outside any container: decide from one character
            if not first:
                self.prev = "blank"
                return
            if first.isalpha():
                self.para(i)
                return
        s = raw.expandtabs(4) if "\t" in raw else raw
        if self.open:
            q, rest = _strip_quotes(s, self.open.quotes)
            if self.in_open(i, q, rest):
                return
        q, rest = _strip_quotes(s, 1 << 30)
        body = rest.lstrip(" ")
        indent = len(rest) - len(body)
        if body and self.lazy(q, indent, body):
            self.para(i)
            return
        if q != self.quotes:
            self.quotes, self.lists, self.prev, self.empty_item = q, [], "blank", False
        if not body:
            if self.empty_item:
                self.lists.pop()  # an item that starts empty ends at its first blank line
            self.prev, self.empty_item = "blank", False
            return
        interrupting = self.prev == "para" and not self.lists
        while self.lists and indent < self.lists[-1]:
            self.lists.pop()
            self.prev = "other"  # the item closed, and its paragraph with it
        self.empty_item = False
        self.block(i, indent, body, interrupting)

    def lazy(self, q: int, indent: int, body: str) -> bool:
        """Whether a line continues an open paragraph whose container markers it lacks."""
        shallower = q < self.quotes or (q == self.quotes and self.lists and indent < self.lists[-1])
        if self.prev != "para" or not shallower:
            return False
        quoted = q < self.quotes
        if quoted and self.quotes > 1 and not body.startswith(">"):
            return not self.starts_block(body, quoted)  # markdown-it ignores the indent here
        outer = self.lists[-2] if len(self.lists) > 1 and not quoted else 0
        return indent - outer >= 4 or not self.starts_block(body, quoted)

    def in_open(self, i: int, q: int, rest: str) -> bool:
        """A line while a fence or comment is open; ``False`` if its container ended first."""
        assert self.open is not None
        block = self.open
        body = rest.lstrip(" ")
        indent = len(rest) - len(body)
        if q < block.quotes or (body and indent < block.base):
            self.open = None
            return False
        if block.kind == "comment":
            self.mark(i)
            if "-->" in body:
                self.open, self.prev = None, "other"
            return True
        close = _CLOSE_RE.match(body) if indent - block.base <= 3 else None
        if close and close["fence"][0] == block.char and len(close["fence"]) >= block.length:
            self.mark(i)
            self.open, self.prev = None, "other"
        elif not block.expand:
            self.mark(i)
        return True

    def starts_block(self, body: str, quoted: bool) -> bool:
        """Whether a line (at most three columns in) interrupts a paragraph.

        Like markdown-it, any list item ends a block quote, but only some start a list.
        """
        return bool(
            _fence(body)
            or _HEADING_RE.match(body)
            or body.startswith(("<!--", ">"))
            or _BREAK_RE.match(body)
            or self.list_item(body, interrupting=not (quoted or self.lists)) is not None
        )

    def list_item(self, body: str, *, interrupting: bool) -> int | None:
        """Columns taken by a list marker and its spacing, or ``None`` if not a list item."""
        m = _LIST_RE.match(body)
        if m is None:
            return None
        after = body[m.end() :]
        if not after.strip():
            return None if interrupting else m.end() + 1  # an empty item cannot interrupt
        if after[0] != " " or (interrupting and m["num"] is not None and int(m["num"]) != 1):
            return None
        spaces = len(after) - len(after.lstrip(" "))
        return m.end() + (spaces if spaces <= 4 else 1)

    def block(self, i: int, indent: int, body: str, interrupting: bool) -> None:
        """Classify a line outside any open fence or comment.

        ``interrupting``: a list item here would start a new list inside a paragraph.
        """
        base = self.lists[-1] if self.lists else 0
        while True:
            if indent - base >= 4:
                if self.prev == "para":
                    self.para(i)
                else:
                    self.mark(i)
                    self.prev = "code"
                return
            if m := _fence(body):
                self.open_fence(i, m["fence"], m["info"], base)
                return
            if body.startswith("<!--"):
                self.mark(i)
                self.open = None if "-->" in body[2:] else _Open("comment", self.quotes, base)
                self.prev = "other"
                return
            if _BREAK_RE.match(body) or (self.prev == "para" and _SETEXT_RE.match(body)):
                self.prev = "other"
                return
            width = self.list_item(body, interrupting=interrupting)
            if width is None:
                break
            base = indent + width
            self.lists.append(base)
            self.prev, interrupting = "blank", False
            after = body[width:]
            body = after.lstrip(" ")
            if not body:
                self.empty_item = True
                return
            indent = base + len(after) - len(body)
        if _HEADING_RE.match(body):
            self.chunks.append([self.offsets[i], self.offsets[i + 1]])
            self.prev = "other"
        else:
            self.para(i)

    def open_fence(self, i: int, fence: str, info: str, base: int) -> None:
        self.mark(i)
        expand = "macros" in info and "macros" in parse_info(info).flags
        self.open = _Open("fence", self.quotes, base, fence[0], len(fence), expand)
        self.prev = "other"

    def para(self, i: int) -> None:
        if self.prev == "para" and self.chunks and self.chunks[-1][1] == self.offsets[i]:
            self.chunks[-1][1] = self.offsets[i + 1]
        else:
            self.chunks.append([self.offsets[i], self.offsets[i + 1]])
        self.prev = "para"

    def inline(self) -> None:
        """Code spans and inline HTML comments, each closed within its paragraph or heading."""
        text = self.text
        for start, end in self.chunks:
            pos = start
            while m := _INLINE_RE.search(text, pos, end):
                escaped = _backslashes_before(text, m.start()) % 2 == 1
                pos = m.end()
                if m.group() == "<!--":
                    close = -1 if escaped else text.find("-->", m.start() + 2, end)
                    if close >= 0:
                        self.literal.append((m.start(), close + 3))
                        pos = close + 3
                    continue
                opener = m.start() + escaped  # an escaped backtick is not part of the run
                run = m.end() - opener
                if run == 0:
                    continue
                closer = _closer(run).search(text, pos, end)
                if closer:
                    self.literal.append((opener, closer.end()))
                    pos = closer.end()


@cache
def _closer(run: int) -> re.Pattern[str]:
    """A backtick run of exactly ``run`` backticks: what closes a code span."""
    return re.compile(rf"(?<!`)`{{{run}}}(?!`)")


def _fence(body: str) -> re.Match[str] | None:
    """A fence opening (a backtick fence's info string may not hold a backtick)."""
    m = _FENCE_RE.match(body)
    return None if m is None or (m["fence"][0] == "`" and "`" in m["info"]) else m


def _strip_quotes(s: str, limit: int) -> tuple[int, str]:
    """Remove up to ``limit`` block-quote markers; return how many and the rest."""
    q, pos = 0, 0
    while q < limit and (m := _QUOTE_RE.match(s, pos)):
        q, pos = q + 1, m.end()
    return q, s[pos:]


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


class _Document:
    """One document being searched for macros: its text, lines and literal regions."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.offsets = line_offsets(text)
        self.spans = _Scan(text, self.offsets).run()
        self.starts = [s for s, _ in self.spans]

    def literal(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` touches literal text."""
        k = bisect_right(self.starts, end - 1) - 1
        return k >= 0 and self.spans[k][1] > start

    def position(self, pos: int) -> tuple[int, int]:
        """1-based line and column of offset ``pos``."""
        line = bisect_right(self.offsets, pos) - 1
        line = max(0, min(line, len(self.offsets) - 2))
        return line + 1, pos - self.offsets[line] + 1

    def sites(self) -> Iterator[MacroSite]:
        for m in _SCAN_RE.finditer(self.text):
            if self.literal(m.start(), m.end()) or _backslashes_before(self.text, m.start()) % 2:
                continue
            if m["target"] is None:
                raise self.malformed(m.start())
            yield self.parse(m)

    def malformed(self, pos: int) -> DocumentError:
        line_start = self.offsets[self.position(pos)[0] - 1]
        bracket = self.text.rfind("[@", line_start, pos)
        if bracket < 0:
            bracket = self.text.rfind("[", line_start, pos)
        line, col = self.position(bracket if bracket >= 0 else pos)
        return DocumentError(
            "malformed macro: a domarkx:// link must read [@text](domarkx://command?…)",
            path=self.path,
            line=line,
            col=col,
            hint=f"{_SYNTAX_HINT}; to show one as is, put it in `code`",
        )

    def parse(self, m: re.Match[str]) -> MacroSite:
        line, col = self.position(m.start())

        def fail(message: str, hint: str = _SYNTAX_HINT) -> DocumentError:
            return DocumentError(message, path=self.path, line=line, col=col, hint=hint)

        command, _, query = m["target"].partition("?")
        if not _COMMAND_RE.match(command):
            raise fail(f"malformed macro: {command!r} is not a macro name")
        params: dict[str, str] = {}

        def add(key: str, value: str) -> None:
            if not key:
                raise fail(f"macro {command!r} has a parameter with no name")
            if key in params:
                raise fail(f"macro {command!r} has parameter {key!r} twice", hint="give each parameter once")
            params[key] = value

        for part in query.split("&"):
            if part:
                key, _, value = part.partition("=")
                add(unquote(key), unquote(value))
        for p in _PARAM_RE.finditer(m["params"]):
            add(p["key"].strip(), p["angle"] if p["angle"] is not None else p["plain"].strip())
        return MacroSite(m.start(), m.end(), line, col, command, params, m["text"])

    def whole_line(self, site: MacroSite) -> tuple[int, int]:
        """The macro's range, widened to its whole line when nothing else is on it."""
        line_start, line_end = self.offsets[site.line - 1], self.offsets[site.line]
        content_end = line_start + len(self.text[line_start:line_end].rstrip("\r\n"))
        if self.text[line_start : site.start].strip(" \t") or self.text[site.end : content_end].strip(" \t"):
            return site.start, site.end
        return line_start, line_end


def find_macros(text: str, *, path: str = "<stdin>") -> Iterator[MacroSite]:
    """The macros of ``text`` that would expand, in order, without running any.

    Raises :class:`DocumentError` for a malformed macro.
    """
    if SCHEME in text:
        yield from _Document(text, path).sites()


# --------------------------------------------------------------------------- expansion


@dataclass
class _Registry:
    """Handlers by name: a given mapping, or the ``domarkx.macros`` entry points, loaded on use."""

    given: Mapping[str, MacroHandler] | None
    loaded: dict[str, MacroHandler] = field(default_factory=dict)

    def names(self) -> list[str]:
        if self.given is not None:
            return sorted(self.given)
        from domarkx._entrypoints import MACROS, names

        return names(MACROS)

    def get(self, name: str) -> MacroHandler | None:
        if self.given is not None:
            return self.given.get(name)
        if name not in self.loaded:
            if name not in self.names():
                return None
            from domarkx._entrypoints import MACROS, load

            handler = load(MACROS, name, what="macro")
            if not callable(handler):
                raise DomarkxError(
                    f"macro {name!r} is registered to {type(handler).__name__}, which is not callable",
                    hint="a domarkx.macros entry point must name a function taking a MacroCall",
                )
            self.loaded[name] = handler
        return self.loaded[name]


class MacroExpander:
    """Expands the macros of a document, once, in document order.

    ``variables`` are the values given by the caller (``--set``); they win over
    the document's own ``set`` macros. ``handlers`` replaces the registry of
    ``domarkx.macros`` entry points (tests and embedders use it).
    """

    def __init__(
        self,
        *,
        variables: Mapping[str, str] | None = None,
        allow_outside: bool = False,
        handlers: Mapping[str, MacroHandler] | None = None,
    ) -> None:
        self.variables = dict(variables or {})
        for name in self.variables:
            if not valid_name(name):
                raise UsageError(
                    f"--set {name}: not a valid variable name",
                    hint="names start with a letter or _, then letters, digits, _, . or -",
                )
        self.allow_outside = allow_outside
        self._registry = _Registry(handlers)

    def expand(self, text: str, *, path: str, base_dir: Path) -> str:
        """``text`` with every macro replaced; raises :class:`DocumentError` at the bad macro."""
        return self.expand_mapped(text, path=path, base_dir=base_dir).text

    def expand_mapped(self, text: str, *, path: str, base_dir: Path) -> Expansion:
        """Like :meth:`expand`, keeping what was replaced so positions can be traced back."""
        variables = Variables(self.variables)
        if SCHEME not in text:
            self._check_used(variables, path)
            return Expansion(text, text, ())
        doc = _Document(text, path)
        edits: list[tuple[int, int, str]] = []
        for site in doc.sites():
            context = MacroContext(path, base_dir, site.line, site.col, variables, self.allow_outside)
            replacement = self._run(MacroCall(site.command, site.params, site.text, context))
            start, end = doc.whole_line(site) if not replacement else (site.start, site.end)
            edits.append((start, end, replacement))
        self._check_used(variables, path)
        expansion = Expansion(text, _apply(text, edits), tuple(edits))
        expansion.check_settled(path)
        return expansion

    def _run(self, call: MacroCall) -> str:
        handler = self._registry.get(call.command)
        if handler is None:
            known = ", ".join(self._registry.names()) or "none installed"
            ctx = call.context
            raise DocumentError(
                f"unknown macro {call.command!r}",
                path=ctx.path,
                line=ctx.line,
                col=ctx.col,
                hint=f"known macros: {known}",
            )
        try:
            result = handler(call)
        except DocumentError:
            raise
        except DomarkxError as exc:
            raise call.error(exc.message, hint=exc.hint) from exc
        except Exception as exc:  # a third-party handler's bug must not crash the import
            where = f"{call.context.path}:{call.context.line}:{call.context.col}"
            raise DomarkxError(
                f"{where}: macro {call.command!r} failed: {type(exc).__name__}: {exc}",
                hint="this is a bug in the macro's handler; report it to the package that provides it",
            ) from exc
        if not isinstance(result, str):
            raise DomarkxError(
                f"macro {call.command!r} returned {type(result).__name__}, not text",
                hint="a macro handler must return a str",
            )
        return result

    def _check_used(self, variables: Variables, path: str) -> None:
        unused = variables.unused()
        if unused:
            raise UsageError(
                f"--set {unused[0]}: {path} has no variable {unused[0]!r}",
                hint="no macro in the document reads or sets it; check the name for a typo",
            )


@dataclass(frozen=True)
class Expansion:
    """A document before and after expansion, and the edits between them.

    The parser sees only the expanded text, so its errors carry positions in
    that text; :meth:`relocate` moves them back to the document the user wrote.
    """

    source: str
    text: str
    edits: tuple[tuple[int, int, str], ...]
    """``(start, end, replacement)``: source offsets ``start:end`` became ``replacement``."""

    def relocate(self, err: DocumentError) -> DocumentError:
        """``err`` pointing into the source: the same place, or the macro whose text holds it."""
        if not self.edits:
            return err
        offsets = line_offsets(self.text)
        pos = 0
        if len(offsets) > 1:
            row = min(max(err.line, 1), len(offsets) - 1) - 1
            pos = min(offsets[row] + max(err.col - 1, 0), offsets[row + 1])
        source_pos, inserted = self._trace(pos)
        source_offsets = line_offsets(self.source)
        line = max(bisect_right(source_offsets, source_pos) - 1, 0)
        line = min(line, max(len(source_offsets) - 2, 0))
        col = source_pos - source_offsets[line] + 1
        message = err.message
        if inserted is not None:
            message += f" (line {inserted} of the text the macro on line {line + 1} inserted)"
        return DocumentError(message, path=err.path, line=line + 1, col=col, hint=err.hint)

    def check_settled(self, path: str) -> None:
        """Refuse an expansion that would expand again: importing a snapshot's export must give it back.

        Inserted text is not scanned while expanding, but the snapshot's document
        is the expanded text, so a macro that text holds (or one that inserted
        fences or backticks turned from literal into live) would expand on the
        next import.
        """
        if SCHEME not in self.text:
            return
        try:
            site = next(find_macros(self.text, path=path), None)
        except DocumentError as err:
            raise self.relocate(err) from err
        if site is not None:
            raise self.relocate(
                DocumentError(
                    "the expanded document holds a macro, which would expand when its snapshot is imported again",
                    path=path,
                    line=site.line,
                    col=site.col,
                    hint="macros do not nest: the text a macro inserts must not hold one"
                    " (put it in `code`, or escape it as \\[@…])",
                )
            )

    def _trace(self, pos: int) -> tuple[int, int | None]:
        """The source offset of expanded offset ``pos``, and ``None``.

        For a position in inserted text: the inserting macro's offset, and the
        1-based line of the insertion it falls on.
        """
        out = last = 0
        for start, end, replacement in self.edits:
            if pos < out + start - last:
                break
            out += start - last
            if pos < out + len(replacement):
                return start, replacement.count("\n", 0, pos - out) + 1
            out += len(replacement)
            last = end
        return min(last + pos - out, len(self.source)), None


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    out: list[str] = []
    last = 0
    for start, end, replacement in edits:
        out.append(text[last:start])
        out.append(replacement)
        last = end
    out.append(text[last:])
    return "".join(out)
