"""domarkx: a Markdown document as the source of truth for an LLM session.

The public API is re-exported here; names load on first use so that the CLI
starts without importing pydantic or markdown-it.
"""

from __future__ import annotations

import importlib
from typing import Any

from domarkx._version import __version__ as __version__

_EXPORTS = {
    "DocumentError": "domarkx.errors",
    "DomarkxError": "domarkx.errors",
    "InstanceManager": "domarkx.session.instance",
    "MacroExpander": "domarkx.parsing.macros",
    "MarkdownParser": "domarkx.parsing.markdown",
    "Message": "domarkx.data.models",
    "Plugin": "domarkx.workspace.plugin",
    "Resource": "domarkx.workspace.plugin",
    "SessionInstance": "domarkx.data.models",
    "SessionManager": "domarkx.session.manager",
    "SessionSnapshot": "domarkx.data.models",
    "SnapshotManager": "domarkx.session.snapshot",
    "Store": "domarkx.data.store",
    "ToolSpec": "domarkx.workspace.plugin",
    "ToolWrapper": "domarkx.tools.wrapper",
    "UsageError": "domarkx.errors",
    "WorkspaceManager": "domarkx.workspace.manager",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'domarkx' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
