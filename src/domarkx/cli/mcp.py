"""``domarkx mcp``: serve an instance's workspace to an MCP client (Claude Code, Codex CLI, Cursor…)."""

from __future__ import annotations

from typing import Literal

import click

from domarkx.cli._common import trust_option
from domarkx.errors import UsageError


@click.command("mcp")
@click.argument("ref", metavar="INSTANCE|DOC|SNAPSHOT")
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio: the client starts domarkx; http: serve on 127.0.0.1 with a token.",
)
@click.option("--port", type=int, default=0, show_default=True, metavar="P", help="HTTP port (0: any free one).")
@trust_option
def mcp_cmd(ref: str, transport: Literal["stdio", "http"], port: int) -> None:
    """Serve INSTANCE over the Model Context Protocol; a DOC or SNAPSHOT starts a new instance.

    The client gets the workspace's tools and checkpoint, log, diff, rewind
    and fork. Every call is recorded in the instance's conversation and the
    workspace is committed after it, so `domarkx log`, `export`, `fork` and
    `reset` see the session like one domarkx ran itself. Over HTTP, the
    server listens on 127.0.0.1 only and prints a token once (or uses
    $DOMARKX_MCP_TOKEN). See docs/mcp.md.

    \b
    Examples:
      domarkx mcp task.md --transport http --port 8765
      claude mcp add domarkx -- domarkx mcp try1
    """
    try:
        from domarkx.mcp.server import serve
    except ImportError as exc:
        raise UsageError(
            f"domarkx mcp needs the MCP SDK ({exc.name or exc} is missing)", hint="pip install 'domarkx[mcp]'"
        ) from exc
    serve(ref, transport=transport, port=port, progress=_progress, announce=_announce)


def _progress(message: str) -> None:
    click.secho(f"· {message}", err=True, dim=True)


def _announce(message: str) -> None:
    click.secho(f"· {message}", err=True)
