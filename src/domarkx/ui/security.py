"""Who may talk to ``domarkx ui``: the holder of its token, from its own origin, and nothing a page can smuggle in.

The server listens on 127.0.0.1 only, but any web page the user visits can
send requests there, and a DNS-rebinding page can even read the answers. So
every request passes :meth:`Gate.check`:

* the ``Host`` header names this server (``127.0.0.1:PORT`` or ``localhost:PORT``),
  which defeats DNS rebinding;
* an ``Origin`` header, when sent, is this server's own;
* the caller holds the token: as the HttpOnly, ``SameSite=Strict`` cookie set when
  the printed URL is first opened (then the token leaves the address bar by a
  redirect, as Jupyter does), or as ``Authorization: Bearer TOKEN`` for scripts;
* a request that changes something (POST) with the cookie also carries this
  server's ``Origin`` and a JSON body, so no other site can forge one (a cross-site
  JSON POST needs a CORS preflight, which this server never grants).

:data:`HEADERS` go on every answer: a Content-Security-Policy that allows only
this server's own scripts and styles (no inline script, no ``eval``), no
framing, no MIME sniffing, no referrer.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from domarkx import paths
from domarkx.errors import PathEscapeError

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}

SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Verdict:
    """What to do with a request: serve it (``status`` 0), refuse it, or set the cookie and redirect."""

    status: int = 0
    reason: str = ""
    redirect: str | None = None
    cookie: str | None = None


OK = Verdict()


class Gate:
    """The checks every request passes (see the module docstring)."""

    def __init__(self, token: str, port: int, *, read_only: bool = False) -> None:
        self.token = token
        self.port = port
        self.read_only = read_only
        self.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})
        self.origins = frozenset(f"http://{host}" for host in self.hosts)
        self.cookie_name = f"domarkx-ui-{port}"
        """Cookies do not tell ports apart: two servers on one machine must not share one."""

    def check(self, method: str, path: str, query: str, headers: Mapping[str, str]) -> Verdict:
        """The verdict on one request; ``headers`` keyed in lower case."""
        if headers.get("host", "") not in self.hosts:
            return Verdict(403, "wrong Host header: open the address `domarkx ui` printed")
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return Verdict(403, "requests from other origins are refused")
        by_bearer = self._same(_bearer(headers.get("authorization", "")))
        by_cookie = self._same(_cookie(headers.get("cookie", ""), self.cookie_name))
        if not (by_bearer or by_cookie):
            return self._login(method, path, query)
        if method in SAFE_METHODS:
            return OK
        if self.read_only:
            return Verdict(403, "this server is read-only (started with --read-only)")
        if not by_bearer and origin is None:
            return Verdict(403, "a change must come from this server's own page (no Origin header)")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return Verdict(415, "send JSON (Content-Type: application/json)")
        return OK

    def _login(self, method: str, path: str, query: str) -> Verdict:
        """The printed URL's ``?token=``: set the cookie, then send the browser to the address without it."""
        pairs = parse_qsl(query, keep_blank_values=True)
        token = next((value for key, value in pairs if key == "token"), None)
        if method in SAFE_METHODS and self._same(token) and path == "/":
            rest = urlencode([(k, v) for k, v in pairs if k != "token"])
            return Verdict(303, redirect="/" + ("?" + rest if rest else ""), cookie=self.cookie())
        return Verdict(403, "no valid token: open the address (with ?token=…) that `domarkx ui` printed")

    def cookie(self) -> str:
        """The ``Set-Cookie`` value that lets this browser in."""
        return f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"

    def _same(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token.encode())


def _bearer(value: str) -> str | None:
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def workspace_path(text: str) -> bytes:
    """A path inside a resource's files, from its escaped form (:mod:`domarkx.paths`); ``""`` is the top.

    Only plain relative paths pass: no leading ``/``, no ``.`` or ``..``, no empty
    part, no NUL. The plugins read versions from their own stores and never
    follow links, so this is the whole of what keeps the browser in the workspace.
    """
    raw = paths.unescape(text)
    if raw == b"":
        return raw
    parts = raw.split(b"/")
    if b"\0" in raw or any(part in (b"", b".", b"..") for part in parts):
        raise PathEscapeError(
            f"path {paths.escape(raw)!r} leaves the workspace or is not a plain relative path",
            hint="use a path relative to the workspace's top, like src/main.py",
        )
    return raw
