"""The public API is deliberate: this pins it, and checks every name resolves."""

from __future__ import annotations

import subprocess
import sys

import domarkx

PUBLIC = [
    "DocumentError",
    "DomarkxError",
    "InstanceManager",
    "MacroExpander",
    "MarkdownParser",
    "Message",
    "Plugin",
    "Resource",
    "SessionInstance",
    "SessionManager",
    "SessionSnapshot",
    "SnapshotManager",
    "Store",
    "ToolSpec",
    "ToolWrapper",
    "UsageError",
    "WorkspaceManager",
    "__version__",
]


def test_all_is_pinned() -> None:
    assert domarkx.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in domarkx.__all__:
        assert getattr(domarkx, name) is not None


def test_version_starts_without_heavy_imports() -> None:
    heavy = "('pydantic', 'markdown_it', 'yaml', 'openai')"
    code = f"import sys, domarkx.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
