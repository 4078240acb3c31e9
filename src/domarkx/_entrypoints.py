"""Entry-point discovery shared by plugins, macros and providers.

Built-in extensions are registered in our own ``pyproject.toml`` under the same
groups third parties use, so the extension path is exercised on every run.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, version
from typing import Any

from domarkx.errors import DomarkxError, MissingExtra, UsageError

PLUGINS = "domarkx.plugins"
MACROS = "domarkx.macros"
PROVIDERS = "domarkx.providers"


@cache
def _group(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def names(group: str) -> list[str]:
    """The names registered in ``group``, sorted; loads no extension code."""
    return sorted(_group(group))


def load(group: str, name: str, *, what: str) -> Any:
    """Import and return the object registered as ``name`` in ``group``.

    ``what`` names the kind of extension in the error ("plugin", "macro", …).
    """
    ep = _group(group).get(name)
    if ep is None:
        from domarkx._suggest import did_you_mean

        known = ", ".join(names(group)) or "none installed"
        raise UsageError(f"unknown {what} {name!r}{did_you_mean(name, names(group))}", hint=f"known {what}s: {known}")
    needs = missing_extra(ep)
    if needs is not None:
        extra, packages = needs
        dist = ep.dist.name if ep.dist is not None else "domarkx"
        raise MissingExtra(
            f"the {name} {what} needs the '{extra}' extra ({', '.join(packages)} not installed)",
            hint=f"pip install '{dist}[{extra}]'",
        )
    try:
        return ep.load()
    except Exception as exc:  # a broken third-party package must not crash us
        raise DomarkxError(
            f"{what} {name!r} failed to load from {ep.value}: {exc}",
            hint="reinstall or remove the package that provides it",
        ) from exc


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def missing_extra(ep: EntryPoint) -> tuple[str, list[str]] | None:
    """The extra an entry point declares (``module:attr [extra]``) and its packages not installed, if any.

    Read from the providing distribution's metadata, without importing the
    extension: ``domarkx plugins`` can say what is usable here.
    """
    if not ep.extras or ep.dist is None:
        return None
    for extra in ep.extras:
        missing = [name for name in _requirements(ep.dist.requires or [], extra) if not _installed(name)]
        if missing:
            return extra, missing
    return None


def _requirements(requires: list[str], extra: str) -> list[str]:
    """The names of the requirements that ``extra`` adds (``name>=1; extra == "x"``)."""
    found = []
    for requirement in requires:
        spec, _sep, marker = requirement.partition(";")
        name = _NAME.match(spec.strip())
        if name is not None and extra in _EXTRA.findall(marker):
            found.append(name.group())
    return found


def _installed(name: str) -> bool:
    try:
        version(name)
    except PackageNotFoundError:
        return False
    return True
