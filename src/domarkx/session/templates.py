"""Templates: documents with ``set``/``var`` macros that ``domarkx new`` renders.

Shipped templates live in the package (``domarkx/templates/*.md``); a user's own
go in ``$DOMARKX_HOME/templates/`` and shadow shipped ones of the same name. A
template is an ordinary document: it may start with ``set`` lines declaring its
variables' defaults, followed by front matter whose ``description`` says what it is
for (read as written, so macros in the front matter must be inside quotes).
Rendering is macro expansion with the caller's variables, then a parse, so a
template that renders to a broken document is reported rather than written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from domarkx.errors import DocumentError, UsageError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "templates"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")

Origin = Literal["user", "shipped", "file"]


@dataclass(frozen=True)
class Template:
    """A template file, and what ``new --list`` says about it."""

    name: str
    path: Path
    origin: Origin
    description: str = ""
    variables: dict[str, str | None] = field(default_factory=dict)
    """Each variable the template uses, with its default (``None``: must be given)."""


def user_dir() -> Path:
    """``$DOMARKX_HOME/templates``: where a user's own templates go."""
    from domarkx.data.store import default_home

    return default_home() / "templates"


def _files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    return {p.stem: p for p in sorted(directory.glob("*.md")) if p.is_file() and _NAME_RE.match(p.stem)}


def list_templates() -> list[Template]:
    """Every available template, user ones shadowing shipped ones, sorted by name."""
    found: dict[str, tuple[Path, Origin]] = {name: (p, "shipped") for name, p in _files(SHIPPED_DIR).items()}
    found.update({name: (p, "user") for name, p in _files(user_dir()).items()})
    return [describe(name, path, origin) for name, (path, origin) in sorted(found.items())]


def find(ref: str) -> Template:
    """The template named ``ref``, or the file ``ref`` when it looks like a path."""
    if "/" in ref or "\\" in ref or ref.endswith(".md"):
        if not Path(ref).is_file():
            raise UsageError(f"no such template file: {ref}", hint="domarkx new --list names the templates")
        return describe(Path(ref).stem, Path(ref), "file")
    searched: tuple[tuple[Origin, Path], ...] = (("user", user_dir()), ("shipped", SHIPPED_DIR))
    for origin, directory in searched:
        path = _files(directory).get(ref)
        if path is not None:
            return describe(ref, path, origin)
    known = ", ".join(t.name for t in list_templates()) or "none"
    raise UsageError(
        f"unknown template {ref!r}",
        hint=f"known templates: {known}; add your own as {user_dir() / (ref + '.md')}",
    )


def describe(name: str, path: Path, origin: Origin) -> Template:
    """A template with its description and variables read from the file; never fails.

    A template that cannot be read says so in its description, so one broken
    file does not hide the others from ``new --list``.
    """
    try:
        text = path.read_text(encoding="utf-8")
        description = _description(text)
        variables = _variables(text, str(path))
    except (OSError, UnicodeDecodeError) as exc:
        return Template(name, path, origin, f"(unreadable: {exc})")
    except DocumentError as exc:
        return Template(name, path, origin, f"(broken: {exc.format()})")
    return Template(name, path, origin, description, variables)


def _description(text: str) -> str:
    """The front matter's ``description``, after any leading macro-only lines."""
    from domarkx.parsing.macros import is_macro_line

    lines = text.splitlines()
    i = 0
    while i < len(lines) and is_macro_line(lines[i]):
        i += 1
    if i == len(lines) or lines[i].lstrip("\ufeff").rstrip() != "---":
        return ""
    end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() in ("---", "...")), None)
    if end is None:
        return ""
    try:
        data = yaml.safe_load("\n".join(lines[i + 1 : end]))
    except yaml.YAMLError:
        return "(front matter is not valid YAML as written: quote the macros in it)"
    value = data.get("description") if isinstance(data, dict) else None
    return str(value).strip() if value is not None else ""


def _variables(text: str, path: str) -> dict[str, str | None]:
    """Variables in order of first use: ``set`` gives a default, a bare ``var`` needs a value."""
    from domarkx.parsing.macros import find_macros

    found: dict[str, str | None] = {}
    for site in find_macros(text, path=path):
        if site.command == "set":
            for key, value in site.params.items():
                found.setdefault(key, value)
        elif site.command == "var":
            name = site.params.get("name", site.text.strip())
            if name:
                found.setdefault(name, site.params.get("default"))
    return found


def render(template: Template, variables: Mapping[str, str]) -> str:
    """The document ``template`` gives with ``variables``, checked to parse."""
    from domarkx.parsing.macros import MacroExpander
    from domarkx.parsing.markdown import MarkdownParser

    path = str(template.path)
    try:
        text = template.path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"template {path} is not UTF-8 text") from exc
    except OSError as exc:
        raise UsageError(f"cannot read template {path}: {exc.strerror}") from exc
    rendered = MacroExpander(variables=variables).expand(text, path=path, base_dir=template.path.parent)
    try:
        MarkdownParser().parse(rendered, path=f"{path} (rendered)")
    except DocumentError as exc:
        advice = "the template renders to a document domarkx cannot read; fix the template or --set values"
        exc.hint = f"{exc.hint}\n{advice}" if exc.hint else advice
        raise
    return rendered
