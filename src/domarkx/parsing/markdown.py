"""Markdown in: a document becomes a :class:`SessionSnapshot`'s structured view.

Block structure comes from markdown-it-py (CommonMark), with inline parsing switched
off because only block boundaries matter here. Every message and block keeps its
line range in the original text, which is what makes export byte-for-byte lossless:
the document text itself is kept, and the structure only points into it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from markdown_it import MarkdownIt
from pydantic import ValidationError

from domarkx._suggest import did_you_mean
from domarkx.data import plain
from domarkx.data.models import (
    FORMAT_VERSION,
    ROLES,
    Block,
    Message,
    SessionSnapshot,
    WorkspaceConfig,
)
from domarkx.errors import DocumentError
from domarkx.parsing.fences import InfoString, parse_info

if TYPE_CHECKING:
    from markdown_it.token import Token

_NEWLINE_RE = re.compile(r"\r\n|\r|\n")
_QUOTE_RE = re.compile(r"^ {0,3}> ?", re.MULTILINE)
_FORMAT_KEY = "domarkx-format"

ConfigCheck = Callable[[str, Any, Block, str], None]
"""Checks a config block once parsed: called with ``"session-config"`` (and its dict) or
``"workspace-config"`` (and its :class:`WorkspaceConfig`), the block and the path; raises
:class:`DocumentError`. ``import`` passes :func:`domarkx.session.config.check`."""


def decode(data: bytes, path: str) -> str:
    """UTF-8 text of ``data``, or a :class:`DocumentError` at the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise DocumentError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x})",
            path=path,
            line=line,
            col=col,
            hint="save the document as UTF-8",
        ) from exc


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML that keeps dates as strings, so front matter stays JSON-able."""


_YamlLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LONG_INT = f"an integer of more than {plain.MAX_INT_DIGITS} digits"


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """YAML integers, refusing (at their position) the ones JSON could not write back.

    Decimal text that long does not even convert (Python limits it); hex, octal
    and binary do, and would leave a snapshot nothing can read.
    """
    try:
        value: int = loader.construct_yaml_int(node)
    except ValueError:
        value = 10**plain.MAX_INT_DIGITS
    if plain.problem(value) is not None:
        raise yaml.constructor.ConstructorError(None, None, f"{_LONG_INT}; quote it", node.start_mark)
    return value


_YamlLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def check_plain(value: Any, *, what: str, path: str, line: int) -> None:
    """Refuse data the store would not keep exactly as parsed (see :mod:`domarkx.data.plain`)."""
    found = plain.problem(value)
    if found is not None:
        raise DocumentError(f"{what} {found.problem}", path=path, line=line, hint=found.hint)


def load_yaml(text: str, *, path: str, first_line: int, what: str) -> Any:
    """Parse YAML found at 0-based ``first_line`` of a document; errors point into it."""
    try:
        data = yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError as exc:
        raise DocumentError(
            f"{what} nests lists or mappings too deeply to read",
            path=path,
            line=first_line + 1,
            hint="flatten the data",
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = first_line + (mark.line if mark else 0) + 1
        col = (mark.column if mark else 0) + 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DocumentError(
            f"invalid YAML in {what}: {problem}",
            path=path,
            line=line,
            col=col,
            hint=f"{what} must be a YAML mapping",
        ) from exc
    check_plain(data, what=what, path=path, line=first_line + 1)
    return data


class _NotJson(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _refuse_constant(name: str) -> Any:
    """``json.loads`` takes NaN and ±Infinity, which standard JSON (and so the store) does not."""
    raise _NotJson(name)


def _long_number(text: str) -> tuple[int, int]:
    """The 1-based line and column of the first over-long run of digits in ``text`` (JSON numbers)."""
    found = re.search(rf"\d{{{plain.MAX_INT_DIGITS + 1},}}", text)
    if found is None:
        return 1, 1
    before = text[: found.start()]
    return before.count("\n") + 1, found.start() - (before.rfind("\n") + 1) + 1


def line_offsets(text: str) -> list[int]:
    """Start offset of each line, plus ``len(text)``: ``text[o[a]:o[b]]`` is lines a..b."""
    starts = [0]
    starts.extend(m.end() for m in _NEWLINE_RE.finditer(text))
    if starts[-1] != len(text):
        starts.append(len(text))
    return starts


@dataclass(frozen=True)
class ConfigLines:
    """Where a document's configuration sits (0-based lines), for errors about a stored snapshot."""

    session_config: int | None = None
    workspace_config: int | None = None
    resources: tuple[int, ...] = ()
    """The line of each ``workspace-config`` resource item, in order."""


def config_lines(text: str) -> ConfigLines:
    """Find the config blocks of ``text`` again; only error paths need it, so it is not stored."""
    found = _Parse(MarkdownParser(), text, "<document>")
    try:
        snap = found.run()
    except DocumentError:  # parsed once already; a plugin uninstalled since cannot be placed
        return ConfigLines()
    block = found.workspace_block
    count = len(snap.workspace_config.resources) if snap.workspace_config else 0
    return ConfigLines(
        session_config=found.session_config_line,
        workspace_config=found.workspace_line,
        resources=tuple(found.yaml_item_line(block, ("resources", i)) for i in range(count)) if block else (),
    )


class MarkdownParser:
    """Parses a session document into a :class:`SessionSnapshot` (id not yet set).

    ``resource_types`` are the workspace resource types to accept; ``None`` means
    the plugins installed under the ``domarkx.plugins`` entry-point group.
    """

    def __init__(self, resource_types: Collection[str] | None = None) -> None:
        self._md = MarkdownIt("commonmark")
        self._md.disable(["inline", "text_join"])
        self._resource_types = resource_types

    @property
    def resource_types(self) -> Collection[str]:
        if self._resource_types is None:
            from domarkx._entrypoints import PLUGINS, names

            self._resource_types = names(PLUGINS)
        return self._resource_types

    def parse(self, text: str, *, path: str = "<stdin>", check: ConfigCheck | None = None) -> SessionSnapshot:
        """The structured view of ``text``; raises only :class:`DocumentError`."""
        return _Parse(self, text, path, check).run()


class _Parse:
    """The state of one parse: text, line offsets and the snapshot being built."""

    def __init__(self, parser: MarkdownParser, text: str, path: str, check: ConfigCheck | None = None) -> None:
        self.parser = parser
        self.check = check
        self.text = text
        self.path = path
        self.offsets = line_offsets(text)
        self.nlines = len(self.offsets) - 1
        self.session_config_line: int | None = None
        self.workspace_line: int | None = None
        self.workspace_block: Block | None = None

    def error(self, message: str, line: int, col: int = 1, hint: str | None = None) -> DocumentError:
        """An error at 0-based ``line`` and 1-based ``col``."""
        return DocumentError(message, path=self.path, line=line + 1, col=col, hint=hint)

    def line(self, index: int) -> str:
        return self.text[self.offsets[index] : self.offsets[index + 1]]

    def raw(self, start: int, end: int) -> str:
        return self.text[self.offsets[start] : self.offsets[end]]

    def run(self) -> SessionSnapshot:
        snap = SessionSnapshot(document=self.text, source=None if self.path == "<stdin>" else self.path)
        body_start = self.front_matter(snap)
        tokens = self.tokens(body_start)
        blocks: list[Block] = []
        current: Message | None = None
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok.level != 0 or tok.nesting == -1 or tok.map is None:
                i += 1
                continue
            start = tok.map[0]
            if tok.type == "heading_open" and tok.markup == "##":
                role = tokens[i + 1].content.split(maxsplit=1)
                if role and role[0].lower() in ROLES:
                    self.close(snap, current, blocks, start)
                    current = Message(role=role[0].lower(), start=start, end=self.nlines)
                    blocks = []
                    i += 1
                    continue
            blocks.append(self.block(tok, tokens[i + 1] if i + 1 < len(tokens) else None))
            i += 1
        self.close(snap, current, blocks, self.nlines)
        return snap

    def tokens(self, body_start: int) -> list[Token]:
        """Block tokens of the body; front-matter lines become blank to keep numbering."""
        body = "\n" * body_start + self.text[self.offsets[body_start] :]
        return self.parser._md.parse(body.replace("\ufeff", "", 1) if body.startswith("\ufeff") else body)

    def front_matter(self, snap: SessionSnapshot) -> int:
        """Parse YAML front matter if present; return the line where the body starts."""
        if self.nlines == 0 or self.line(0).lstrip("\ufeff").rstrip() != "---":
            return 0
        for end in range(1, self.nlines):
            if self.line(end).rstrip() in ("---", "..."):
                break
        else:
            raise self.error(
                "front matter opened here is never closed",
                0,
                hint="end the front matter with a line holding only ---",
            )
        data = load_yaml(self.raw(1, end), path=self.path, first_line=1, what="front matter")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.error("front matter must be a YAML mapping", 1, hint="write key: value lines")
        version = data.get(_FORMAT_KEY, FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            raise self.error(
                f"document format {version!r} is not supported (this domarkx reads 1..{FORMAT_VERSION})",
                1,
                hint="upgrade domarkx to read documents written by a newer version",
            )
        snap.front_matter = data
        return end + 1

    def close(self, snap: SessionSnapshot, msg: Message | None, blocks: list[Block], end: int) -> None:
        """Finish the preamble or a message at line ``end``."""
        if msg is None:
            snap.preamble_end = end
            self.preamble(snap, blocks)
            return
        msg.end = end
        kept: list[Block] = []
        for block in blocks:
            info = InfoString(block.lang, block.attrs, tuple(block.flags))
            if block.kind == "code" and info.names("msg-metadata"):
                if msg.metadata_lines is not None:
                    raise self.error(
                        "a message has more than one msg-metadata block",
                        block.start,
                        hint=f"merge it into the one on line {msg.metadata_lines[0] + 1}",
                    )
                msg.metadata = self.json_object(block, "msg-metadata")
                msg.metadata_lines = (block.start, block.end)
            elif block.kind == "code" and info.names("tool-call"):
                self.tool_call(block, info)
                kept.append(block)
            elif not self.config_block(snap, block, info):
                kept.append(block)
        msg.blocks = kept
        snap.messages.append(msg)

    def preamble(self, snap: SessionSnapshot, blocks: list[Block]) -> None:
        after_config = False
        for block in blocks:
            info = InfoString(block.lang, block.attrs, tuple(block.flags))
            if self.config_block(snap, block, info):
                after_config = info.names("session-config")
                continue
            is_setup = block.kind == "code" and (
                info.names("setup-script") or (after_config and block.lang is not None)
            )
            if is_setup:
                if snap.setup is not None:
                    raise self.error("more than one setup block", block.start, hint="merge them into one")
                snap.setup = block
            after_config = False

    def config_block(self, snap: SessionSnapshot, block: Block, info: InfoString) -> bool:
        """Take a session-config or workspace-config block; ``False`` for any other."""
        if block.kind != "code":
            return False
        if info.names("session-config"):
            if self.session_config_line is not None:
                raise self.error(
                    f"second session-config block (the first is on line {self.session_config_line + 1})",
                    block.start,
                    hint="merge them into one session-config block",
                )
            self.session_config_line = block.start
            snap.session_config = self.json_object(block, "session-config")
            if self.check is not None:
                self.check("session-config", snap.session_config, block, self.path)
            return True
        if info.names("workspace-config"):
            if self.workspace_line is not None:
                raise self.error(
                    f"second workspace-config block (the first is on line {self.workspace_line + 1})",
                    block.start,
                    hint="list every resource in one workspace-config block",
                )
            self.workspace_line, self.workspace_block = block.start, block
            snap.workspace_config = self.workspace(block)
            if self.check is not None:
                self.check("workspace-config", snap.workspace_config, block, self.path)
            return True
        return False

    def json_object(self, block: Block, what: str) -> dict[str, Any]:
        try:
            value = json.loads(block.text, parse_constant=_refuse_constant)
        except _NotJson as exc:
            line = block.start + 1 + block.text.count("\n", 0, max(block.text.find(exc.name), 0))
            raise self.error(
                f"{exc.name} in {what} is not JSON", line, hint="write null, or the number as a string"
            ) from exc
        except RecursionError as exc:
            raise self.error(
                f"{what} nests arrays or objects too deeply to read", block.start + 1, hint="flatten the data"
            ) from exc
        except json.JSONDecodeError as exc:
            raise self.error(
                f"invalid JSON in {what}: {exc.msg}",
                block.start + exc.lineno,
                exc.colno,
                hint=f'{what} must be one JSON object, e.g. {{"key": "value"}}',
            ) from exc
        except ValueError as exc:  # a number Python will not convert: more digits than it allows
            line, col = _long_number(block.text)
            raise self.error(
                f"{_LONG_INT} in {what}", block.start + line, col, hint="write the number as a string"
            ) from exc
        if not isinstance(value, dict):
            raise self.error(
                f"{what} must be a JSON object, not {type(value).__name__}",
                block.start + 1,
                hint=f'wrap the {what} in {{…}}, e.g. {{"key": "value"}}',
            )
        check_plain(value, what=what, path=self.path, line=block.start + 2)
        return value

    def tool_call(self, block: Block, info: InfoString) -> None:
        """A recorded tool call needs an id, a name and JSON-object arguments."""
        missing = [key for key in ("id", "name") if not info.attrs.get(key)]
        if missing:
            raise self.error(
                f"tool-call block lacks {' and '.join(missing)}",
                block.start,
                hint="write ```json tool-call id=call_1 name=run_command",
            )
        self.json_object(block, "tool-call")

    def workspace(self, block: Block) -> WorkspaceConfig:
        data = load_yaml(block.text, path=self.path, first_line=block.start + 1, what="workspace-config")
        if not isinstance(data, dict):
            raise self.error(
                "workspace-config must be a YAML mapping with a resources: list",
                block.start + 1,
                hint="resources:\n  - type: local_shell",
            )
        try:
            config = WorkspaceConfig.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = err["loc"]
            line = self.yaml_item_line(block, loc)
            where = ".".join(str(p) for p in loc)
            hint = "each resource is a mapping with a type: key, e.g. - type: local_shell"
            if loc and loc[-1] == "type" and err["type"] == "missing":
                hint = f"known types: {', '.join(self.parser.resource_types)}"
            raise self.error(f"workspace-config: {where}: {err['msg']}", line, hint=hint) from exc
        known = self.parser.resource_types
        for index, res in enumerate(config.resources):
            if res.type not in known:
                raise self.error(
                    f"unknown resource type {res.type!r}{did_you_mean(res.type, known)}",
                    self.yaml_item_line(block, ("resources", index)),
                    hint=f"known types: {', '.join(known) or 'none (install a domarkx plugin)'}",
                )
        return config

    def yaml_item_line(self, block: Block, loc: tuple[Any, ...]) -> int:
        """0-based document line of the YAML node at ``loc`` (best effort: the block start)."""
        node: Any = yaml.compose(block.text, Loader=_YamlLoader)
        line = 0
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = [v for k, v in node.value if k.value == part]
                if not match:
                    break
                node = match[0]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
            else:
                break
            line = node.start_mark.line
        return block.start + 1 + line

    def block(self, tok: Token, following: Token | None) -> Block:
        """A Block for one top-level token."""
        assert tok.map is not None
        start, end = tok.map
        if tok.type == "fence":
            self.check_closed(tok, start, end)
            info = parse_info(tok.info)
            return Block(
                kind="code",
                start=start,
                end=end,
                text=tok.content,
                lang=info.lang,
                attrs=info.attrs,
                flags=list(info.flags),
            )
        if tok.type == "code_block":
            return Block(kind="code", start=start, end=end, text=tok.content)
        raw = self.raw(start, end)
        if "\r" in raw:  # the text a model sees has one line ending, whatever the file uses
            raw = _NEWLINE_RE.sub("\n", raw)
        raw = raw.rstrip("\n")
        if tok.type == "blockquote_open":
            raw = _QUOTE_RE.sub("", raw)
        return Block(kind="text", start=start, end=end, text=raw)

    def check_closed(self, tok: Token, start: int, end: int) -> None:
        """A top-level fence must close before the document ends."""
        if end - start >= 2:
            last = self.line(end - 1).strip()
            if last.startswith(tok.markup) and set(last) == {tok.markup[0]}:
                return
        raise self.error(
            f"code fence {tok.markup} opened here is never closed",
            start,
            hint=f"add a line with {tok.markup} after the block's last line",
        )
