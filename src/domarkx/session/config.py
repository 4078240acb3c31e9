"""A document's configuration, checked when it is imported rather than when it first runs.

``session-config`` is checked against :class:`SessionConfig`, each
``workspace-config`` resource against its plugin's ``config_model``, and
``model_options`` against the options model of the provider ``"model"`` names.
A mistake is one error pointing at the offending key inside its block
(``doc.md:7:3: error: session-config: unknown key 'engin' (did you mean
'engine'?)``), and nothing is stored. A key that looks like a credential
(``api_key``, ``token``, ``password``…) is refused wherever it appears in
either block: a document is shared, exported and stored, so a secret in it
would travel with it. Keys come from the environment (docs/providers.md).

A document with text but no ``## role`` heading has no messages; :func:`no_messages`
says so, naming the line that was most likely meant as one (``## User:``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from domarkx import _entrypoints
from domarkx._suggest import did_you_mean, nearest
from domarkx.data.models import ROLES, WorkspaceConfig
from domarkx.errors import DocumentError, UsageError

if TYPE_CHECKING:
    from domarkx.data.models import Block, SessionSnapshot

Path_ = Sequence[str | int]
"""Where a value sits in a config block: keys and list indices from the top."""

_SECRET_NAMES = frozenset(
    {"api_key", "apikey", "key", "token", "access_token", "auth_token", "secret", "secret_key", "private_key"}
    | {"password", "passwd", "passphrase", "credential", "credentials", "authorization", "bearer"}
)
_SECRET_SUFFIXES = ("_api_key", "_apikey", "_secret", "_secret_key", "_private_key", "_password", "_passwd", "_token")


class SessionConfig(BaseModel):
    """The keys ``session-config`` may hold (docs/format.md)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    engine: StrictStr | None = None
    """Shorthand for a one-resource workspace of this plugin type (docs/workspaces.md)."""
    timeout: float | None = Field(default=None, gt=0)
    """Passed to the ``engine`` resource (``local_shell`` by default); its plugin checks it too."""
    model: StrictStr | None = None
    """``PROVIDER:MODEL`` when none is given on the command line (docs/providers.md)."""
    model_options: dict[str, Any] | None = None
    """The provider's options; checked against its options model when ``model`` names it."""
    approve: StrictBool | None = None
    """Ask before each tool call (docs/sessions.md)."""


def is_secret(key: str) -> bool:
    """Whether a config key names a credential (``api_key``, ``GITHUB_TOKEN``…), not a setting about one."""
    lowered = key.lower().replace("-", "_")
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


def check(kind: str, value: Any, block: Block, path: str) -> None:
    """The parser's hook (:data:`domarkx.parsing.markdown.ConfigCheck`): refuse a bad config at its key."""
    place = _Place(block, path, "json" if kind == "session-config" else "yaml")
    if kind == "session-config":
        _check_session(value, place)
    elif isinstance(value, WorkspaceConfig):
        _check_workspace(value, place)


class _Place:
    """Turns a key path inside a config block into a ``path:line:col`` error."""

    def __init__(self, block: Block, path: str, syntax: str) -> None:
        self.block, self.path, self.syntax = block, path, syntax

    def error(self, where: Path_, message: str, hint: str | None = None) -> DocumentError:
        finder = _json_offset if self.syntax == "json" else _yaml_offset
        offset = finder(self.block.text, where)
        text = self.block.text
        line = text.count("\n", 0, offset)
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return DocumentError(message, path=self.path, line=self.block.start + 2 + line, col=col, hint=hint)


# -- session-config ----------------------------------------------------------------------------


def _check_session(config: dict[str, Any], place: _Place) -> None:
    _refuse_secrets(config, (), place, "session-config key")
    try:
        SessionConfig.model_validate(config)
    except ValidationError as exc:
        raise _invalid(exc, (), place, "session-config key", SessionConfig) from exc
    if config.get("engine") is not None:
        _check_engine(config, place)
    if config.get("model") is not None:
        _check_model(config["model"], config.get("model_options") or {}, place)


def _check_engine(config: dict[str, Any], place: _Place) -> None:
    engine = config["engine"]
    try:
        plugin = _entrypoints.load(_entrypoints.PLUGINS, engine, what="plugin")
    except UsageError as exc:
        raise place.error(("engine",), f"session-config: {exc.message}", exc.hint) from exc
    if "timeout" in config:  # the one key the engine's resource gets (docs/workspaces.md)
        _check_options(plugin, engine, {"timeout": config["timeout"]}, (), place)


def _check_model(spec: str, options: dict[str, Any], place: _Place) -> None:
    provider_name, colon, _model = spec.partition(":")
    if not colon or not provider_name:
        raise place.error(
            ("model",),
            f"session-config: model {spec!r} is not PROVIDER:MODEL",
            hint=f"e.g. openai:gpt-4o-mini; providers: {', '.join(_entrypoints.names(_entrypoints.PROVIDERS))}",
        )
    try:
        provider = _entrypoints.load(_entrypoints.PROVIDERS, provider_name, what="provider")
    except UsageError as exc:
        raise place.error(("model",), f"session-config: {exc.message}", exc.hint) from exc
    model = getattr(provider, "Options", None)
    if options and isinstance(model, type) and issubclass(model, BaseModel):
        try:
            model.model_validate(options)
        except ValidationError as exc:
            raise _invalid(exc, ("model_options",), place, f"{provider_name} model option", model) from exc


# -- workspace-config --------------------------------------------------------------------------


def _check_workspace(config: WorkspaceConfig, place: _Place) -> None:
    from domarkx.workspace.manager import resource_names

    try:
        resource_names(config)  # unique names models accept: what creating the workspace would refuse
    except UsageError as exc:
        named = [i for i, r in enumerate(config.resources) if r.name and repr(r.name) in exc.message]
        where: Path_ = ("resources", named[1 if len(named) > 1 else 0], "name") if named else ("resources",)
        message = exc.message if exc.message.startswith("workspace-config") else f"workspace-config: {exc.message}"
        raise place.error(where, message, exc.hint) from exc
    for index, resource in enumerate(config.resources):
        where = ("resources", index)
        _refuse_secrets(resource.options, where, place, f"{resource.type} option")
        plugin = _entrypoints.load(_entrypoints.PLUGINS, resource.type, what="plugin")
        _check_options(plugin, resource.type, resource.options, where, place)


def _check_options(plugin: Any, plugin_type: str, options: dict[str, Any], where: Path_, place: _Place) -> None:
    model = getattr(plugin, "config_model", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return  # a plugin that declares no options model checks them when it creates the resource
    try:
        model.model_validate(options)
    except ValidationError as exc:
        raise _invalid(exc, where, place, f"{plugin_type} option", model) from exc


# -- shared ------------------------------------------------------------------------------------


def _invalid(exc: ValidationError, where: Path_, place: _Place, what: str, model: type[BaseModel]) -> DocumentError:
    """Pydantic's first complaint as an error at the key it is about; the known keys are the hint.

    ``what`` names one key of the block: ``session-config key``, ``local_shell option``….
    """
    first = exc.errors()[0]
    loc = tuple(first["loc"])
    known = sorted(model.model_fields)
    hint = f"{what}s: {', '.join(known)}"
    if first["type"] == "extra_forbidden":
        name = str(loc[-1])
        return place.error((*where, *loc), f"unknown {what} {name!r}{did_you_mean(name, known)}", hint)
    message = first["msg"].removeprefix("Value error, ")
    message = f"{message[:1].lower()}{message[1:]}"
    if not loc:  # a check across keys (a model validator) is about the whole block
        return place.error(where, f"invalid {what}s: {message}", hint)
    key = ".".join(str(part) for part in loc)
    return place.error((*where, *loc), f"{what} {key!r}: {message}", hint)


def _refuse_secrets(value: Any, where: Path_, place: _Place, what: str, depth: int = 0) -> None:
    """Refuse any key, at any depth, that names a credential (``what``: the block's kind of key)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        inner = (*where, key)
        if isinstance(key, str) and is_secret(key):
            name = ".".join(str(part) for part in inner[len(inner) - depth - 1 :])
            raise place.error(
                inner, f"{what} {name!r} looks like a credential: documents never hold secrets", _KEEP_KEYS_OUT
            )
        _refuse_secrets(item, inner, place, what, depth + 1)


_KEEP_KEYS_OUT = (
    "a document is shared, stored and exported: keep keys in the environment"
    " (a provider reads its own variable, e.g. OPENAI_API_KEY; docs/providers.md)"
)


def _json_offset(text: str, where: Path_) -> int:
    """Offset in JSON ``text`` of the key (or list item) at ``where``; as deep as it goes, best effort."""
    decoder = json.JSONDecoder()
    pos = found = _skip_space(text, 0)
    for part in where:
        if text[pos : pos + 1] == "{" and isinstance(part, str):
            located = _json_member(text, pos, part, decoder)
        elif text[pos : pos + 1] == "[" and isinstance(part, int):
            located = _json_item(text, pos, part, decoder)
        else:
            located = None
        if located is None:
            break
        found, pos = located
    return found


def _json_member(text: str, pos: int, key: str, decoder: json.JSONDecoder) -> tuple[int, int] | None:
    """(offset of the key, offset of its value) of the last ``key`` of the object at ``pos``."""
    located = None
    pos = _skip_space(text, pos + 1)
    while text[pos : pos + 1] == '"':
        name, end = decoder.raw_decode(text, pos)
        value = _skip_space(text, _skip_space(text, end) + 1)
        if name == key:
            located = (pos, value)  # JSON keeps the last of repeated keys
        pos = _skip_space(text, decoder.raw_decode(text, value)[1])
        pos = _skip_space(text, pos + 1) if text[pos : pos + 1] == "," else pos
    return located


def _json_item(text: str, pos: int, index: int, decoder: json.JSONDecoder) -> tuple[int, int] | None:
    pos = _skip_space(text, pos + 1)
    for _ in range(index):
        if text[pos : pos + 1] in ("", "]"):
            return None
        pos = _skip_space(text, decoder.raw_decode(text, pos)[1])
        pos = _skip_space(text, pos + 1) if text[pos : pos + 1] == "," else pos
    return (pos, pos) if text[pos : pos + 1] not in ("", "]") else None


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _yaml_offset(text: str, where: Path_) -> int:
    """Offset in YAML ``text`` of the key (or list item) at ``where``; as deep as it goes, best effort."""
    import yaml

    node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    found = 0
    for part in where:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == part]
            if not match:
                break
            key, node = match[-1]
            found = key.start_mark.index
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            found = node.start_mark.index
        else:
            break
    return found


# -- documents without messages ----------------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_LABEL = re.compile(r"^\s*(?:\*\*|__)?([A-Za-z]+)(?:\*\*|__)?\s*:")


def no_messages(snapshot: SessionSnapshot) -> tuple[int, str] | None:
    """For a document with prose but no ``## role`` heading: (1-based line, warning), else None.

    The warning names the first line that looks meant as a heading (``## User:``,
    ``# assistant``, ``**User:**``) and the heading it should be.
    """
    if snapshot.messages:
        return None
    lines = snapshot.document.splitlines()
    first_text, guess = None, None
    for number, line in _prose_lines(lines):
        first_text = first_text or number
        meant = _meant_role(line)
        if meant is not None:
            guess = (
                number,
                f"the document has no messages: line {number} is {line.strip()!r}; did you mean '## {meant}'?",
            )
            break
    if guess is not None:
        return guess
    if first_text is None:
        return None
    return first_text, "the document has text but no '## user' or '## assistant' heading, so it has no messages"


def _prose_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(1-based number, line) of each non-blank line outside front matter and fenced code."""
    found: list[tuple[int, str]] = []
    start, fence = 0, ""
    if lines and lines[0].lstrip("\ufeff").rstrip() == "---":
        closing = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), len(lines) - 1)
        start = closing + 1
    for index in range(start, len(lines)):
        line, stripped = lines[index], lines[index].strip()
        if fence:
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = ""
            continue
        opened = _FENCE.match(line)
        if opened:
            fence = opened.group(1)
        elif stripped:
            found.append((index + 1, line))
    return found


def _meant_role(line: str) -> str | None:
    """The role a heading-like line probably meant (``## User:`` → ``user``), else None."""
    heading = _HEADING.match(line)
    label = _LABEL.match(line)
    words = heading.group(1).split() if heading else [label.group(1)] if label else []
    if not words:
        return None
    word = words[0].strip("*_:`").lower()
    if word in ROLES:
        return word
    return nearest(word, ROLES) if heading else None
