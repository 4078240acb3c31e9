"""``domarkx mcp``: an instance's workspace served over the Model Context Protocol.

Any agent that speaks MCP (Claude Code, Codex CLI, Cursor…) gets the
workspace's tools plus session tools (``checkpoint``, ``log``, ``diff``,
``rewind``, ``fork``), and every call it makes is recorded in the instance's
conversation as if domarkx's own model loop had made it (docs/mcp.md).

``_recorder`` runs and records calls and knows nothing of MCP; ``_tools`` holds
the session tools; ``server`` speaks MCP over stdio or HTTP with the official
SDK (the ``domarkx[mcp]`` extra), and ``_http`` guards the HTTP transport.
"""
