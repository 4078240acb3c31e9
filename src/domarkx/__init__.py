"""domarkx: a Markdown document as the source of truth for an LLM session.

The stable API is what this module exports (docs/api.md): the extension
surface for plugins, providers and macros, the error tree, and the seeds'
managers. Everything else is internal. Names load on first use, so that the
CLI starts without importing pydantic or markdown-it.
"""

from __future__ import annotations

import importlib
from typing import Any

from domarkx._version import __version__ as __version__

_PLUGIN = "domarkx.workspace.plugin"
_PROVIDER = "domarkx.llm.base"
_MACROS = "domarkx.parsing.macros"
_ERRORS = "domarkx.errors"

_EXPORTS = {
    # writing a resource plugin
    "Change": _PLUGIN,
    "CodeRunner": _PLUGIN,
    "Entry": _PLUGIN,
    "Layer": _PLUGIN,
    "Plugin": _PLUGIN,
    "PluginContext": _PLUGIN,
    "Resource": _PLUGIN,
    "ResourceDiff": _PLUGIN,
    "ToolError": _PLUGIN,
    "ToolSpec": _PLUGIN,
    "Unsupported": _PLUGIN,
    "emit_output": _PLUGIN,
    "note": _PLUGIN,
    "report_progress": _PLUGIN,
    # writing a model provider
    "ChatMessage": _PROVIDER,
    "Completion": _PROVIDER,
    "Provider": _PROVIDER,
    "ProviderOptions": _PROVIDER,
    "ToolCall": _PROVIDER,
    "ToolDefinition": _PROVIDER,
    "Usage": _PROVIDER,
    # writing a macro
    "MacroCall": _MACROS,
    "MacroContext": _MACROS,
    "MacroHandler": _MACROS,
    # errors
    "AmbiguousReference": _ERRORS,
    "DocumentError": _ERRORS,
    "DomarkxError": _ERRORS,
    "MissingExtra": _ERRORS,
    "ModelAuthError": _ERRORS,
    "ModelConnectionError": _ERRORS,
    "ModelRateLimitError": _ERRORS,
    "ModelRequestError": _ERRORS,
    "ModelResponseError": _ERRORS,
    "ModelServerError": _ERRORS,
    "ModelTimeoutError": _ERRORS,
    "PathEscapeError": _ERRORS,
    "ProviderError": _ERRORS,
    "ReferenceNotFound": _ERRORS,
    "StoreError": _ERRORS,
    "UsageError": _ERRORS,
    # using domarkx from Python
    "InstanceManager": "domarkx.session.instance",
    "MacroExpander": _MACROS,
    "MarkdownParser": "domarkx.parsing.markdown",
    "Message": "domarkx.data.models",
    "SessionInstance": "domarkx.data.models",
    "SessionManager": "domarkx.session.manager",
    "SessionSnapshot": "domarkx.data.models",
    "SnapshotManager": "domarkx.session.snapshot",
    "Store": "domarkx.data.store",
    "ToolWrapper": "domarkx.tools.wrapper",
    "WorkspaceManager": "domarkx.workspace.manager",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'domarkx' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
