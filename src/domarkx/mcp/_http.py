"""Guarding the HTTP transport: loopback only, a bearer token, and no foreign ``Origin``.

A server on 127.0.0.1 is still reachable by every local process and by any
web page the user's browser opens (DNS rebinding, a form posted to
localhost). So every request must carry the token (``Authorization: Bearer``),
a request with an ``Origin`` header must come from this server's own origin
(a page elsewhere is refused before the token is even looked at), and the
``Host`` must name this server (the SDK checks that).
"""

from __future__ import annotations

import hmac
import secrets
import socket
from typing import Any

from domarkx import _keys
from domarkx.errors import DomarkxError, UsageError

HOST = "127.0.0.1"
_MIN_TOKEN = 16


def token() -> str:
    """``$DOMARKX_MCP_TOKEN`` (so a client's configuration survives restarts), else a fresh random one."""
    chosen = _keys.get("DOMARKX_MCP_TOKEN")  # a secret: domarkx holds it out of its environment (docs/security.md)
    if chosen is None:
        return secrets.token_urlsafe(32)
    if len(chosen) < _MIN_TOKEN or not chosen.isascii() or not chosen.isprintable() or " " in chosen:
        raise UsageError(
            "DOMARKX_MCP_TOKEN must be at least 16 printable ASCII characters without spaces",
            hint="e.g. export DOMARKX_MCP_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )
    return chosen


def listen(port: int) -> socket.socket:
    """A listening socket on the loopback interface (port 0: any free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        sock.listen(64)
    except OverflowError as exc:
        sock.close()
        raise UsageError(f"--port {port} is not a port number", hint="use 1..65535, or 0 for any free port") from exc
    except OSError as exc:
        sock.close()
        raise DomarkxError(
            f"cannot listen on {HOST}:{port}: {exc.strerror}", hint="pick another --port, or --port 0 for any free one"
        ) from exc
    return sock


def guarded_app(server: Any, port: int, secret: str) -> Any:
    """The SDK's streamable-HTTP app for ``server``, behind the origin and token checks."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = [f"{HOST}:{port}", f"localhost:{port}"]
    origins = [f"http://{host}" for host in hosts]
    security = TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)
    app = server.streamable_http_app(host=HOST, transport_security=security)
    return Guard(app, secret, origins)


class Guard:
    """ASGI middleware: refuse a foreign ``Origin`` (403) and a missing or wrong token (401)."""

    def __init__(self, app: Any, secret: str, origins: list[str]) -> None:
        self.app = app
        self.expected = f"Bearer {secret}".encode("ascii")
        self.origins = {o.encode("ascii") for o in origins}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers: dict[bytes, bytes] = {}
            for key, value in scope["headers"]:
                headers.setdefault(key.lower(), value)
            origin = headers.get(b"origin")
            if origin is not None and origin not in self.origins:
                await _refuse(send, 403, "forbidden: requests from web pages are refused\n")
                return
            if not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
                await _refuse(send, 401, "unauthorized: send the token as `Authorization: Bearer <token>`\n")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Any, status: int, text: str) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text.encode("utf-8")})
