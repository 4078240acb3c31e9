"""The macros domarkx ships: ``include``, ``set`` and ``var``.

They are registered in our own ``pyproject.toml`` under the ``domarkx.macros``
entry-point group, exactly as a third-party macro would be, so that path is used
on every import. docs/macros.md is the user reference for each of them.
"""

from __future__ import annotations

import re
import stat
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from domarkx.parsing.fences import parse_info
from domarkx.parsing.macros import MacroCall, valid_name
from domarkx.parsing.markdown import line_offsets

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

_LINES_RE = re.compile(r"(?P<a>\d+)?(?P<dash>-)?(?P<b>\d+)?\Z")
_BACKTICKS_RE = re.compile(r"`{3,}")
_NAME_HINT = "names start with a letter or _, then letters, digits, _, . or -"


def set_variable(call: MacroCall) -> str:
    """``set``: define variables for the rest of the document; expands to nothing.

    A value given on the command line (``--set``) wins, so ``set`` in a template
    declares a default.
    """
    if not call.params:
        raise call.error("nothing to set", hint="e.g. [@defaults](domarkx://set?owner=ada)[title](My title)")
    for name, value in call.params.items():
        if not valid_name(name):
            raise call.error(f"{name!r} is not a valid variable name", hint=_NAME_HINT)
        call.context.variables.define(name, value)
    return ""


def variable(call: MacroCall) -> str:
    """``var``: a variable's value (the name is ``name=``, else the link text)."""
    call.check_params(optional=("name", "default", "fence"))
    name = call.params.get("name", call.text.strip())
    if not name:
        raise call.error("which variable?", hint="name it: [@title](domarkx://var) or domarkx://var?name=title")
    if not valid_name(name):
        raise call.error(f"{name!r} is not a valid variable name", hint=_NAME_HINT)
    value = call.context.variables.get(name)
    if value is None:
        if "default" not in call.params:
            raise call.error(
                f"variable {name!r} is not set",
                hint=f"pass --set {name}=VALUE, define it earlier with domarkx://set?{name}=…,"
                f" or give a default: domarkx://var?name={name}&default=…",
            )
        value = call.params["default"]
    return _maybe_fenced(call, value)


def include(call: MacroCall) -> str:
    """``include``: a file's text, or some of its lines, or one fenced block of it."""
    call.check_params(required=("path",), optional=("lines", "block", "index", "fence"))
    params = call.params
    if "block" in params and "index" in params:
        raise call.error("give block= or index=, not both")
    target = _resolve(call, params["path"])
    text = _read_text(call, params["path"], target)
    if "block" in params or "index" in params:
        text = _fenced_block(call, text)
    text = _select_lines(call, text, params["lines"]) if "lines" in params else _chomp(text)
    return _maybe_fenced(call, text)


def _resolve(call: MacroCall, raw: str) -> Path:
    """The file ``raw`` names, relative to the document, refused if it leaves the tree."""
    ctx = call.context
    if not raw:
        raise call.error("path is empty", hint="e.g. domarkx://include?path=notes.md")
    try:
        base = ctx.base_dir.resolve()
        target = (base / raw).resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise call.error(f"cannot resolve {raw!r}: {exc}") from exc
    if not ctx.allow_outside and not target.is_relative_to(base):
        raise call.error(
            f"{raw!r} is outside the document's directory ({base})",
            hint="include files from the document's directory or below; if you trust this document,"
            " pass --allow-outside to `domarkx import`",
        )
    return target


def _read_text(call: MacroCall, raw: str, target: Path) -> str:
    """The file's text; only regular files are read, as a pipe or a device may never end."""
    try:
        mode = target.stat().st_mode
        data = target.read_bytes() if stat.S_ISREG(mode) else b""
    except FileNotFoundError as exc:
        raise call.error(
            f"no such file: {raw}", hint=f"paths are relative to the document's directory ({target.parent})"
        ) from exc
    except OSError as exc:
        raise call.error(f"cannot read {raw}: {exc.strerror}") from exc
    if stat.S_ISDIR(mode):
        raise call.error(f"{raw} is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise call.error(f"{raw} is not a regular file", hint="include reads text files, not devices, pipes or sockets")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise call.error(
            f"{raw} is not UTF-8 text (byte 0x{data[exc.start]:02x} on its line {line})",
            hint="only UTF-8 text files can be included",
        ) from exc
    return text.removeprefix("\ufeff")


def _select_lines(call: MacroCall, text: str, spec: str) -> str:
    """Lines ``A-B`` (1-based, inclusive; ``A``, ``A-`` and ``-B`` too), without the last newline."""
    offsets = line_offsets(text)
    count = len(offsets) - 1
    m = _LINES_RE.match(spec)
    if not spec or m is None or (m["a"] is None and m["b"] is None):
        raise call.error(f"lines={spec!r} is not a line range", hint="e.g. lines=3-10, lines=7, lines=5- or lines=-20")
    first = int(m["a"]) if m["a"] else 1
    last = int(m["b"]) if m["b"] else (count if m["dash"] else first)
    if first < 1 or last < first:
        raise call.error(f"lines={spec}: the range is empty", hint="lines count from 1; write FIRST-LAST")
    if last > count:
        raise call.error(f"lines={spec}: the text has only {count} line{'s' if count != 1 else ''}")
    return _chomp(text[offsets[first - 1] : offsets[last]])


def _chomp(text: str) -> str:
    """Drop one final line break, so a macro alone on its line yields exactly the lines it names."""
    return text.removesuffix("\n").removesuffix("\r")


@cache
def _markdown() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark")
    md.disable(["inline", "text_join"])
    return md


def _fenced_block(call: MacroCall, text: str) -> str:
    """The code of the fenced block named by ``block=`` or numbered by ``index=`` (from 1)."""
    fences = [t for t in _markdown().parse(text) if t.type == "fence"]
    path = call.params["path"]
    if "index" in call.params:
        spec = call.params["index"]
        if not spec.isdigit() or not 1 <= int(spec) <= len(fences):
            raise call.error(
                f"index={spec}: {path} has {len(fences)} fenced block{'s' if len(fences) != 1 else ''}",
                hint="blocks are numbered from 1 in document order",
            )
        return str(fences[int(spec) - 1].content)
    name = call.params["block"]
    names = [parse_info(t.info).attrs.get("name") for t in fences]
    found = [t for t, n in zip(fences, names, strict=True) if n == name]
    if len(found) != 1:
        known = ", ".join(sorted({n for n in names if n})) or "none"
        problem = "no fenced block" if not found else f"{len(found)} fenced blocks"
        raise call.error(
            f"{problem} named {name!r} in {path}",
            hint=f"named blocks there: {known} (name one with ```lang name={name})",
        )
    return str(found[0].content)


def _maybe_fenced(call: MacroCall, text: str) -> str:
    """``text`` in a fenced code block when ``fence=INFO`` is given (``fence=`` for no info string)."""
    if "fence" not in call.params:
        return text
    info = call.params["fence"]
    if "`" in info or "\n" in info or "\r" in info:
        raise call.error(f"fence={info!r}: an info string is one line without backticks")
    longest = max((len(r) for r in _BACKTICKS_RE.findall(text)), default=2)
    fence = "`" * (longest + 1)
    body = text if not text or text.endswith("\n") else text + "\n"
    return f"{fence}{info}\n{body}{fence}"
