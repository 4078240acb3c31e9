"""A small MCP server written with the official SDK, used as an ``mcp`` resource in tests.

It keeps notes in memory (state that lives in the server, which domarkx
cannot version) and appends each call to ``calls.log`` in its working
directory, so a test sees what reached it. Run: ``python notes_server.py
[--http PORT]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server import MCPServer

server = MCPServer("notes", version="1.0")
NOTES: list[str] = []


def _log(line: str) -> None:
    with Path("calls.log").open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")


@server.tool()
def add_note(text: str) -> str:
    """Remember a note; returns how many there are."""
    NOTES.append(text)
    _log(f"add_note {text}")
    return f"{len(NOTES)} note(s)"


@server.tool()
def list_notes() -> str:
    """Every note, one per line."""
    _log("list_notes")
    return "\n".join(NOTES) or "(no notes)"


@server.tool(name="env.get")
def env_get(key: str) -> str:
    """A variable of the server's environment (to check what reached it)."""
    return os.environ.get(key, "(unset)")


@server.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--http":
        server.run("streamable-http", port=int(sys.argv[2]))
    else:
        server.run()
