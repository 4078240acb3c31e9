"""The embedded server of ``domarkx ui``: the standard library's threaded HTTP server, no other process.

One thread per request suits what it serves: the store (SQLite) and the
plugins are synchronous, and a turn's events stream as server-sent events from
the thread that holds the connection. Each request opens its own store
connection (SQLite connections stay in their thread). docs/ui.md says why this
and not an ASGI framework.

Every request passes :class:`domarkx.ui.security.Gate` first; every answer
carries :data:`domarkx.ui.security.HEADERS`.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from domarkx import paths
from domarkx._version import __version__
from domarkx.data.store import Store
from domarkx.errors import DomarkxError, ReferenceNotFound, UsageError
from domarkx.ui import api
from domarkx.ui.security import HEADERS, Gate, Verdict
from domarkx.ui.turns import Turns

DEFAULT_PORT = 8707
MAX_BODY = 1 << 20
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class Reply:
    """An answer: JSON data, or bytes of a type (a download when ``filename`` is set)."""

    data: Any = None
    body: bytes = b""
    content_type: str = "application/json"
    filename: str | None = None
    status: int = 200


Route = Callable[["Handler", re.Match[str], dict[str, str]], Reply]


class UIServer(ThreadingHTTPServer):
    """The server: its gate, its turns, its assets."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, home: Path, *, read_only: bool = False, token: str | None = None) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.home = home
        self.read_only = read_only
        self.token = token or secrets.token_urlsafe(32)
        self.gate = Gate(self.token, self.server_address[1], read_only=read_only)
        self.turns = Turns(home)
        self.assets = _assets()

    @property
    def url(self) -> str:
        """The address to open: it carries the token, which the first visit trades for a cookie."""
        return f"http://127.0.0.1:{self.server_address[1]}/?token={self.token}"


def _assets() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the package: only these names are ever served."""
    found: dict[str, tuple[bytes, str]] = {}
    for item in resources.files("domarkx.ui").joinpath("static").iterdir():
        suffix = Path(item.name).suffix
        if item.is_file() and suffix in _TYPES:
            found[item.name] = (item.read_bytes(), _TYPES[suffix] + ("; charset=utf-8" if suffix != ".svg" else ""))
    return found


class Handler(BaseHTTPRequestHandler):
    """One request: the gate, then a route."""

    server: UIServer
    protocol_version = "HTTP/1.1"
    server_version = f"domarkx-ui/{__version__}"
    sys_version = ""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal shows the address and errors, not every request."""

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        headers = {key.lower(): value for key, value in self.headers.items()}
        verdict = self.server.gate.check(method, url.path, url.query, headers)
        if verdict.status:
            self._refuse(verdict)
            return
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        for verb, pattern, route in ROUTES:
            match = pattern.fullmatch(url.path)
            if match and verb == ("GET" if method == "HEAD" else method):
                self._answer(route, match, query)
                return
        self._send(Reply({"error": f"nothing at {url.path}", "hint": None}, status=404))

    def _answer(self, route: Route, match: re.Match[str], query: dict[str, str]) -> None:
        try:
            reply = route(self, match, query)
        except ReferenceNotFound as exc:
            reply = Reply({"error": exc.message, "hint": exc.hint}, status=404)
        except UsageError as exc:
            reply = Reply({"error": exc.message, "hint": exc.hint}, status=400)
        except DomarkxError as exc:
            reply = Reply({"error": exc.message, "hint": exc.hint}, status=409 if "busy" in exc.message else 500)
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:  # a bug: one line to the page and to the terminal, the server goes on
            print(f"error: internal error: {type(exc).__name__}: {exc} ({self.command} {self.path})", file=sys.stderr)
            reply = Reply({"error": f"internal error: {type(exc).__name__}: {exc}", "hint": None}, status=500)
        if reply.status >= 0:
            self._send(reply)

    def _refuse(self, verdict: Verdict) -> None:
        if verdict.redirect is not None:
            self.send_response(303)
            self.send_header("Location", verdict.redirect)
            if verdict.cookie:
                self.send_header("Set-Cookie", verdict.cookie)
            self.send_header("Content-Length", "0")
            self._common_headers()
            self.end_headers()
            return
        self._send(Reply({"error": verdict.reason, "hint": None}, status=verdict.status))

    def _common_headers(self) -> None:
        for key, value in HEADERS.items():
            self.send_header(key, value)

    def _send(self, reply: Reply) -> None:
        body = reply.body if reply.data is None else json.dumps(reply.data, ensure_ascii=False).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        if reply.filename is not None:
            self.send_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(reply.filename)}")
        self._common_headers()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- requests ----------------------------------------------------------------

    def body(self) -> dict[str, Any]:
        """The JSON object a POST carries."""
        declared = self.headers.get("Content-Length") or "0"
        if not declared.isdigit():
            raise UsageError("Content-Length must be a number")
        length = int(declared)
        if length > MAX_BODY:
            raise UsageError("the request is too large")
        try:
            data = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as exc:
            raise UsageError("the request body is not JSON") from exc
        if not isinstance(data, dict):
            raise UsageError("the request body must be a JSON object")
        return data

    def stream(self, turn_id: str, after: int) -> None:
        """A turn's events as server-sent events, until it ends or the page leaves."""
        turn = self.server.turns.get(turn_id)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Connection", "close")
        self._common_headers()
        self.end_headers()
        self.close_connection = True
        while True:
            events, over = turn.read(after)
            chunk = "".join(
                f"id: {e.number}\nevent: {e.kind}\ndata: {json.dumps(e.data, ensure_ascii=False)}\n\n" for e in events
            )
            self.wfile.write((chunk or ": still working\n\n").encode())
            self.wfile.flush()
            after += len(events)
            if over and not events:
                return


# -- routes --------------------------------------------------------------------------


def _with_store(handler: Handler, work: Callable[[api.Context], Any]) -> Any:
    with Store(handler.server.home) as store:
        return work(api.Context.open(store))


def _int(query: dict[str, str], key: str) -> int | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise UsageError(f"{key} must be a whole number") from exc


def _page(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    body, content_type = handler.server.assets["index.html"]
    return Reply(body=body, content_type=content_type)


def _asset(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    found = handler.server.assets.get(match["name"])
    if found is None:
        raise ReferenceNotFound(f"no asset {match['name']!r}")
    return Reply(body=found[0], content_type=found[1])


def _about(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    return Reply({"version": __version__, "read_only": handler.server.read_only, "page": api.PAGE})


def _overview(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    return Reply(_with_store(handler, lambda ctx: api.overview(ctx, hidden=query.get("hidden") == "1")))


def _instance(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    return Reply(_with_store(handler, lambda ctx: api.instance(ctx, match["ref"])))


def _messages(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    start, stop = _int(query, "start"), _int(query, "stop")
    return Reply(_with_store(handler, lambda ctx: api.messages(ctx, match["ref"], start=start, stop=stop)))


def _diff(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    at = _int(query, "at")
    if at is None:
        raise UsageError("which message? (at=N)")
    return Reply(_with_store(handler, lambda ctx: api.diff(ctx, match["ref"], at)))


def _where(query: dict[str, str]) -> dict[str, Any]:
    return {"at": _int(query, "at"), "resource": query.get("resource") or None, "path": query.get("path", "")}


def _files(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    return Reply(_with_store(handler, lambda ctx: api.files(ctx, match["ref"], **_where(query))))


def _file(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    return Reply(_with_store(handler, lambda ctx: api.file(ctx, match["ref"], **_where(query))))


def _raw(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    where = _where(query)
    _, data = _with_store(handler, lambda ctx: api.file_bytes(ctx, match["ref"], **where))
    name = paths.escape(paths.unescape(where["path"]).rsplit(b"/", 1)[-1]) or "file"
    return Reply(body=data, content_type="application/octet-stream", filename=name)


def _export(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    at = _int(query, "at")
    name, text = _with_store(handler, lambda ctx: api.export(ctx, match["ref"], at))
    return Reply(body=text.encode(), content_type="text/markdown; charset=utf-8", filename=name)


def _fork(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    body = handler.body()
    return Reply(_with_store(handler, lambda ctx: api.fork(ctx, match["ref"], body)))


def _rewind(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    body = handler.body()
    return Reply(_with_store(handler, lambda ctx: api.rewind(ctx, match["ref"], body)))


def _send_message(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    body = handler.body()
    instance_id = _with_store(handler, lambda ctx: ctx.instances.resolve(match["ref"]))
    approve = body.get("approve")
    model = body.get("model")
    if approve is not None and not isinstance(approve, bool):
        raise UsageError("approve must be true or false")
    if model is not None and not isinstance(model, str):
        raise UsageError("model must be text like openai:gpt-4o-mini")
    text = None if body.get("continue") is True else body.get("text", "")
    turn = handler.server.turns.start(instance_id, text, model=model, approve=approve)
    return Reply({"turn": turn.id}, status=202)


def _events(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    after = handler.headers.get("Last-Event-ID") or query.get("after") or "0"
    if not after.isdigit():
        raise UsageError("Last-Event-ID must be a number")
    handler.stream(match["turn"], int(after))
    return Reply(status=-1)  # already answered


def _approval(handler: Handler, match: re.Match[str], query: dict[str, str]) -> Reply:
    body = handler.body()
    call, decision = body.get("call"), body.get("decision")
    if not isinstance(call, str) or not isinstance(decision, str):
        raise UsageError("send {call: ID, decision: yes|no|always}")
    handler.server.turns.get(match["turn"]).decide(call, decision)
    return Reply({"ok": True})


_REF = r"(?P<ref>[A-Za-z0-9._:-]{1,128})"
ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    (verb, re.compile(pattern), route)
    for verb, pattern, route in [
        ("GET", r"/", _page),
        ("GET", r"/static/(?P<name>[A-Za-z0-9_-]{1,64}\.[a-z]{2,4})", _asset),
        ("GET", r"/api/about", _about),
        ("GET", r"/api/overview", _overview),
        ("GET", rf"/api/instances/{_REF}", _instance),
        ("GET", rf"/api/instances/{_REF}/messages", _messages),
        ("GET", rf"/api/instances/{_REF}/diff", _diff),
        ("GET", rf"/api/instances/{_REF}/files", _files),
        ("GET", rf"/api/instances/{_REF}/file", _file),
        ("GET", rf"/api/instances/{_REF}/raw", _raw),
        ("GET", rf"/api/instances/{_REF}/export", _export),
        ("POST", rf"/api/instances/{_REF}/fork", _fork),
        ("POST", rf"/api/instances/{_REF}/rewind", _rewind),
        ("POST", rf"/api/instances/{_REF}/turns", _send_message),
        ("GET", r"/api/turns/(?P<turn>[0-9a-f]{16})/events", _events),
        ("POST", r"/api/turns/(?P<turn>[0-9a-f]{16})/approval", _approval),
    ]
]


def bind(port: int | None, home: Path, *, read_only: bool) -> UIServer:
    """A server on 127.0.0.1: ``port``, else :data:`DEFAULT_PORT` or, when that is taken, a free one."""
    if port is not None:
        if not 0 <= port <= 65535:
            raise UsageError(f"--port {port} is not a port", hint="use 1-65535, or 0 for any free port")
        try:
            return UIServer(port, home, read_only=read_only)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on 127.0.0.1:{port}: {exc.strerror}", hint="pick another --port (0: any free port)"
            ) from exc
    try:
        return UIServer(DEFAULT_PORT, home, read_only=read_only)
    except OSError:
        return UIServer(0, home, read_only=read_only)
