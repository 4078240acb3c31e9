"""The public API is deliberate: this pins it, checks every name resolves and is documented in docs/api.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import domarkx

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"

PUBLIC = [
    "AmbiguousReference",
    "Change",
    "ChatMessage",
    "CodeRunner",
    "Completion",
    "DocumentError",
    "DomarkxError",
    "Entry",
    "InstanceManager",
    "Layer",
    "MacroCall",
    "MacroContext",
    "MacroExpander",
    "MacroHandler",
    "MarkdownParser",
    "Message",
    "MissingExtra",
    "ModelAuthError",
    "ModelConnectionError",
    "ModelRateLimitError",
    "ModelRequestError",
    "ModelResponseError",
    "ModelServerError",
    "ModelTimeoutError",
    "PathEscapeError",
    "Plugin",
    "PluginContext",
    "Provider",
    "ProviderError",
    "ProviderOptions",
    "ReferenceNotFound",
    "Resource",
    "ResourceDiff",
    "SessionInstance",
    "SessionManager",
    "SessionSnapshot",
    "SnapshotManager",
    "Store",
    "StoreError",
    "ToolCall",
    "ToolDefinition",
    "ToolError",
    "ToolSpec",
    "ToolWrapper",
    "Unsupported",
    "Usage",
    "UsageError",
    "WorkspaceManager",
    "__version__",
    "emit_output",
    "note",
    "report_progress",
]


def test_all_is_pinned() -> None:
    assert domarkx.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in domarkx.__all__:
        assert getattr(domarkx, name) is not None


def test_every_public_name_is_documented() -> None:
    documented = set(re.findall(r"`(\w+)(?:\(|`)", API_DOC.read_text()))
    assert sorted(set(PUBLIC) - {"__version__"} - documented) == []


def test_the_error_classes_form_one_tree() -> None:
    errors = [getattr(domarkx, name) for name in PUBLIC if name.endswith(("Error", "Reference", "Found"))]
    errors += [domarkx.MissingExtra, domarkx.Unsupported]
    assert all(issubclass(error, domarkx.DomarkxError) for error in errors)


def test_importing_domarkx_loads_nothing_heavy() -> None:
    heavy = "('pydantic', 'markdown_it', 'yaml', 'openai', 'docker', 'jupyter_client', 'anthropic')"
    code = f"import sys, domarkx, domarkx.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
