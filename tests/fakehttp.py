"""The plumbing of the fake model servers: a real HTTP/1.1 server on 127.0.0.1 in a thread.

It records every request, answers from a queue of scripted replies, and can
misbehave on purpose (refuse, hang, cut a stream). The API-specific servers
(``fake_openai``, ``fake_anthropic``) only say how a reply is written.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

HANG_LIMIT = 10.0
"""A hanging reply gives up after this long even if the test forgets to stop the server."""

Fault = Literal["drop", "hang", "truncate", "cut", "stall", "error_event", "garbage"]
"""How a reply misbehaves.

drop: close the connection without answering. hang: never answer.
truncate: send half the stream, then end it cleanly without finishing the reply.
cut: send half the stream, then close the connection mid-body. stall: send half,
then go quiet. error_event: send half, then an error event. garbage: send a
``data:`` line that is not JSON.
"""


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any


@dataclass
class Reply:
    """One scripted answer: text and tool calls, or an HTTP error, or a fault."""

    content: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usage: tuple[int, int] | None = None
    """(input, output) tokens; by default counted as words of the request and of the reply."""
    model: str | None = None
    status: int = 200
    error: str = ""
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    fault: Fault | None = None
    interleave: bool = False
    """Stream the argument pieces of parallel tool calls round-robin instead of one call after another."""
    call_ids: list[str] | None = None
    """The tool-call ids to send (a hostile server's); by default ``call_1``, ``call_2``…"""


def text(content: str, **kw: Any) -> Reply:
    return Reply(content=content, **kw)


def calls(*tool_calls: tuple[str, dict[str, Any]], content: str = "", **kw: Any) -> Reply:
    return Reply(content=content, tool_calls=list(tool_calls), **kw)


def error(status: int, message: str = "scripted failure", **kw: Any) -> Reply:
    return Reply(status=status, error=message, **kw)


def fault(kind: Fault, content: str = "a reply that will not arrive in one piece", **kw: Any) -> Reply:
    return Reply(content=content, fault=kind, **kw)


def words(text: str) -> list[str]:
    """``text`` cut after each run of spaces, so the pieces join back to exactly ``text``."""
    pieces: list[str] = []
    current = ""
    for char in text:
        if current and char != " " and current.endswith(" "):
            pieces.append(current)
            current = ""
        current += char
    return [*pieces, current] if current else pieces


def thirds(text: str) -> list[str]:
    """``text`` in three pieces (some may be empty), as a server may split a JSON string anywhere."""
    a, b = len(text) // 3, 2 * len(text) // 3
    return [text[:a], text[a:b], text[b:]]


class ScriptedServer:
    """A threaded HTTP server answering from a queue; subclasses write the replies."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: deque[Reply] = deque()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._call_ids = 0
        self.httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self._serve, name="fake-model-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue(self, *replies: Reply) -> Self:
        with self._lock:
            self.replies.extend(replies)
        return self

    def next_call_id(self) -> str:
        with self._lock:
            self._call_ids += 1
            return f"call_{self._call_ids}"

    def call_ids(self, reply: Reply) -> list[str]:
        """The ids of ``reply``'s tool calls: the scripted ones, else fresh ones."""
        return list(reply.call_ids) if reply.call_ids is not None else [self.next_call_id() for _ in reply.tool_calls]

    def start(self) -> Self:
        self._thread.start()
        return self

    def _serve(self) -> None:
        self.httpd.serve_forever(poll_interval=0.02)  # a short poll makes stop() quick

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what subclasses provide -------------------------------------------------

    def route(self, path: str) -> bool:
        """Whether ``path`` is the endpoint this server fakes."""
        raise NotImplementedError

    def respond(self, handler: Handler, request: Recorded, reply: Reply) -> None:
        """Write ``reply`` (a success or a stream fault) for ``request``."""
        raise NotImplementedError

    def error_body(self, reply: Reply) -> dict[str, Any]:
        return {"error": {"message": reply.error, "type": "fake_error", "code": reply.code}}

    # -- the request cycle ---------------------------------------------------------

    def handle(self, handler: Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length)
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        request = Recorded(handler.command, handler.path, dict(handler.headers.items()), raw, body)
        with self._lock:
            self.requests.append(request)
            reply = self.replies.popleft() if self.replies else None
        if not self.route(handler.path):
            handler.send_json(404, {"error": {"message": f"fake server: no endpoint {handler.path}"}})
        elif reply is None:
            handler.send_json(400, {"error": {"message": "fake server: no scripted reply left"}})
        elif reply.fault == "drop":
            handler.close_connection = True
        elif reply.fault == "hang":
            self.stopping.wait(HANG_LIMIT)
            handler.close_connection = True
        elif reply.status != 200:
            handler.send_json(reply.status, self.error_body(reply), reply.headers)
        else:
            self.respond(handler, request, reply)

    def _handler_class(self) -> type[Handler]:
        server = self

        class Bound(Handler):
            owner = server

        return Bound


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up (as clients that time out do) is normal here; anything else is a bug."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """One connection; keeps it alive between requests like a real server."""

    protocol_version = "HTTP/1.1"
    owner: ScriptedServer

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._sockets.add(self.request)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._sockets.discard(self.request)
        super().finish()

    def do_POST(self) -> None:
        self.owner.handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``requests`` instead."""

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_event(self, data: str, event: str | None = None) -> None:
        """One server-sent event, as one HTTP chunk."""
        line = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
        payload = line.encode()
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def end_events(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def send_events(self, events: list[tuple[str | None, str]], reply: Reply, error_event: str) -> None:
        """Stream ``events`` (event name, data), misbehaving halfway as ``reply.fault`` says."""
        self.start_events()
        if reply.fault is None:
            for name, data in events:
                self.send_event(data, name)
            self.end_events()
            return
        for name, data in events[: len(events) // 2]:
            self.send_event(data, name)
        if reply.fault == "truncate":
            self.end_events()
        elif reply.fault == "cut":
            self.close_connection = True
        elif reply.fault == "stall":
            self.owner.stopping.wait(HANG_LIMIT)
            self.close_connection = True
        elif reply.fault == "error_event":
            self.send_event(error_event, "error")
            self.end_events()
        elif reply.fault == "garbage":
            self.send_event("this is not json")
            self.end_events()
