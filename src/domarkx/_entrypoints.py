"""Entry-point discovery shared by plugins, macros and providers.

Built-in extensions are registered in our own ``pyproject.toml`` under the same
groups third parties use, so the extension path is exercised on every run.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from domarkx.errors import DomarkxError, UsageError

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
    try:
        return ep.load()
    except Exception as exc:  # a broken third-party package must not crash us
        raise DomarkxError(
            f"{what} {name!r} failed to load from {ep.value}: {exc}",
            hint="reinstall or remove the package that provides it",
        ) from exc
