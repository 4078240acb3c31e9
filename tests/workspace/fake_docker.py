"""An in-process fake of the Docker Engine API endpoints ``docker_sandbox`` uses, for fault injection.

The plugin is tested against a real engine (``tests/docker``, ``.ci/docker.sh``);
this fake exists for what a real engine will not do on demand: fail a given
request (:attr:`FakeDockerEngine.faults`), or drop the connection mid-command.

A real HTTP/1.1 server on 127.0.0.1, spoken to by the real Docker SDK (point
``DOCKER_HOST`` at :attr:`FakeDockerEngine.url`). Images and containers hold an
in-memory file system (path -> bytes, or ``None`` for a directory): a commit
copies a container's files into a new image (with one more layer if they
differ from its image's, as the engine adds no layer for an empty change), a
container created from an image starts with a copy of its files.

``exec`` understands the scripts the plugin sends (``sh -c SCRIPT domarkx ARGS…``):
the time-out wrapper (recognised by its first line) runs its "$1" through a tiny
shell; other scripts run through the same tiny shell with "$1"… substituted.
The tiny shell knows ``echo``, ``cat``, ``ls -1Ap``, ``mkdir -p``, ``rm``,
``sleep``, ``exit``, ``pwd``, ``id`` (root), ``true``/``false``; ``;`` and ``&&``; ``>``,
``>>`` and ``>&2``; and ``$NAME`` from the container's environment only.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import posixpath
import re
import shlex
import struct
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Files = dict[str, bytes | None]
API_VERSION = "1.43"
UPGRADE_PAUSE = 0.05
"""Seconds between the 101 headers and the first frame of an exec stream.

The SDK reads frames from the raw socket once it has parsed the headers, so
bytes that arrive together with the headers would be lost in the client's
header buffer; a real engine's output comes later anyway, and so does ours.
"""


@dataclass
class Image:
    id: str
    files: Files
    tags: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    parent: str = ""


@dataclass
class Container:
    id: str
    image: str
    files: Files
    env: dict[str, str]
    workdir: str
    create_body: dict[str, Any]
    running: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.create_body.get("Labels") or {})


@dataclass
class Exec:
    container: str
    cmd: list[str]
    workdir: str
    exit_code: int | None = None


class FakeDockerEngine:
    """The engine's state plus the HTTP server that exposes it."""

    def __init__(self, images: dict[str, Files] | None = None) -> None:
        self.images: dict[str, Image] = {}
        self.containers: dict[str, Container] = {}
        self.execs: dict[str, Exec] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.pullable: dict[str, Files] = {}
        """Images a pull can fetch, by ``repo:tag``."""
        self.faults: dict[str, int | str] = {}
        """Endpoint name -> an HTTP status to answer with, or ``"drop"`` to close the connection unanswered."""
        self.networks = ["host", "none"]
        self._ids = itertools.count(1)
        for name, files in (images or {}).items():
            self.add_image(name, files)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeDockerEngine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def new_id(self) -> str:
        return hashlib.sha256(f"fake-{next(self._ids)}".encode()).hexdigest()

    def add_image(self, name: str | None, files: Files, *, base: Image | None = None) -> Image:
        layers = list(base.layers) if base is not None else []
        if base is None or files != base.files:
            layers.append("sha256:" + hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest())
        image = Image(
            id="sha256:" + self.new_id(),
            files=dict(files),
            tags=[_full_tag(name)] if name else [],
            layers=layers,
            labels=dict(base.labels) if base is not None else {},
            parent=base.id if base is not None else "",
        )
        self.images[image.id] = image
        return image

    def find_image(self, ref: str) -> Image | None:
        for image in self.images.values():
            if ref in (image.id, image.id.removeprefix("sha256:")) or _full_tag(ref) in image.tags:
                return image
        return None

    def find_container(self, ref: str) -> Container | None:
        return self.containers.get(ref)


def _describe(image: Image) -> dict[str, Any]:
    size = sum(len(data or b"") for data in image.files.values())
    return {
        "Id": image.id,
        "RepoTags": image.tags,
        "RootFS": {"Layers": image.layers},
        "Size": size,
        "ParentId": image.parent,
    }


def _changes(query: dict[str, str]) -> list[dict[str, str]]:
    """The ``LABEL k="v" …`` lines of a commit's ``changes`` (the only kind the plugin sends)."""
    labels = []
    for line in [query["changes"]] if "changes" in query else []:
        words = shlex.split(line)
        if words and words[0] == "LABEL":
            labels.append(dict(word.split("=", 1) for word in words[1:]))
    return labels


def _full_tag(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


# -- HTTP --------------------------------------------------------------------------

_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(f"^{pattern}$"), name)
    for method, pattern, name in [
        ("GET", r"/_ping", "ping"),
        ("HEAD", r"/_ping", "ping"),
        ("GET", r"/version", "version"),
        ("GET", r"/images/json", "image_list"),
        ("GET", r"/images/(?P<ref>.+)/json", "image_inspect"),
        ("POST", r"/images/(?P<ref>.+)/tag", "image_tag"),
        ("DELETE", r"/images/(?P<ref>.+)", "image_remove"),
        ("POST", r"/images/create", "image_pull"),
        ("GET", r"/networks", "network_list"),
        ("GET", r"/containers/json", "container_list"),
        ("POST", r"/containers/create", "container_create"),
        ("POST", r"/containers/(?P<id>[^/]+)/start", "container_start"),
        ("POST", r"/containers/(?P<id>[^/]+)/stop", "container_stop"),
        ("GET", r"/containers/(?P<id>[^/]+)/json", "container_inspect"),
        ("DELETE", r"/containers/(?P<id>[^/]+)", "container_remove"),
        ("PUT", r"/containers/(?P<id>[^/]+)/archive", "archive_put"),
        ("POST", r"/containers/(?P<id>[^/]+)/exec", "exec_create"),
        ("POST", r"/exec/(?P<id>[^/]+)/start", "exec_start"),
        ("GET", r"/exec/(?P<id>[^/]+)/json", "exec_inspect"),
        ("POST", r"/commit", "commit"),
    ]
]


def _handler(engine: FakeDockerEngine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.route("GET")

        def do_HEAD(self) -> None:
            self.route("HEAD")

        def do_POST(self) -> None:
            self.route("POST")

        def do_PUT(self) -> None:
            self.route("PUT")

        def do_DELETE(self) -> None:
            self.route("DELETE")

        def route(self, method: str) -> None:
            split = urlsplit(self.path)
            path = re.sub(r"^/v[0-9.]+", "", split.path)
            query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            is_json = "json" in (self.headers.get("Content-Type") or "")
            body = json.loads(raw) if raw and is_json else raw
            engine.requests.append((method, path, body))
            for route_method, pattern, name in _ROUTES:
                match = pattern.match(path)
                if match and route_method == method:
                    fault = engine.faults.get(name)
                    if fault == "drop":
                        self.close_connection = True
                        return
                    if fault is not None:
                        self.reply(int(fault), {"message": f"fake engine: injected failure of {name}"})
                        return
                    getattr(self, name)(query, body, **match.groupdict())
                    return
            self.reply(404, {"message": f"fake engine: no route for {method} {path}"})

        def reply(self, status: int, payload: Any = None, *, text: bytes | None = None) -> None:
            data = text if text is not None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text is not None else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Api-Version", API_VERSION)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def missing(self, what: str, ref: str) -> None:
            self.reply(404, {"message": f"No such {what}: {ref}"})

        # -- endpoints ---------------------------------------------------------

        def ping(self, query: dict[str, str], body: Any) -> None:
            self.reply(200, text=b"OK")

        def version(self, query: dict[str, str], body: Any) -> None:
            self.reply(200, {"ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "Version": "fake", "Os": "linux"})

        def image_inspect(self, query: dict[str, str], body: Any, ref: str) -> None:
            image = engine.find_image(ref)
            if image is None:
                self.missing("image", ref)
                return
            self.reply(200, _describe(image) | {"Config": {"User": "", "Labels": image.labels}})

        def image_list(self, query: dict[str, str], body: Any) -> None:
            wanted = json.loads(query.get("filters") or "{}").get("reference")
            images = [
                i
                for i in engine.images.values()
                if not wanted or any(t.rsplit(":", 1)[0] == ref for t in i.tags for ref in wanted)
            ]
            self.reply(200, [_describe(i) for i in images])

        def image_tag(self, query: dict[str, str], body: Any, ref: str) -> None:
            image = engine.find_image(ref)
            if image is None:
                self.missing("image", ref)
                return
            image.tags.append(f"{query['repo']}:{query.get('tag') or 'latest'}")
            self.reply(201, text=b"")

        def image_remove(self, query: dict[str, str], body: Any, ref: str) -> None:
            image = engine.find_image(ref)
            if image is None:
                self.missing("image", ref)
                return
            done: list[dict[str, str]] = []
            tag = _full_tag(ref)
            if tag in image.tags:
                image.tags.remove(tag)
                done.append({"Untagged": tag})
            if not image.tags and not any(c.image == image.id for c in engine.containers.values()):
                del engine.images[image.id]
                done.append({"Deleted": image.id})
            self.reply(200, done)

        def network_list(self, query: dict[str, str], body: Any) -> None:
            self.reply(200, [{"Name": name, "Id": name} for name in engine.networks])

        def container_list(self, query: dict[str, str], body: Any) -> None:
            wanted = json.loads(query.get("filters") or "{}").get("label") or []
            found = [
                {"Id": c.id, "Image": c.image, "Labels": c.labels}
                for c in engine.containers.values()
                if set(wanted) <= {f"{k}={v}" for k, v in c.labels.items()}
            ]
            self.reply(200, found)

        def image_pull(self, query: dict[str, str], body: Any) -> None:
            name = f"{query['fromImage']}:{query.get('tag') or 'latest'}"
            if name not in engine.pullable:
                self.reply(404, {"message": f"pull access denied for {query['fromImage']}"})
                return
            engine.add_image(name, engine.pullable[name])
            self.reply(200, text=json.dumps({"status": f"Downloaded newer image for {name}"}).encode() + b"\n")

        def container_create(self, query: dict[str, str], body: Any) -> None:
            image = engine.find_image(body["Image"])
            if image is None:
                self.missing("image", body["Image"])
                return
            env = dict(item.split("=", 1) for item in body.get("Env") or [])
            workdir = body.get("WorkingDir") or "/"
            container = Container(engine.new_id(), image.id, dict(image.files), env, workdir, body)
            _mkdirs(container.files, workdir)
            engine.containers[container.id] = container
            self.reply(201, {"Id": container.id, "Warnings": []})

        def container_start(self, query: dict[str, str], body: Any, id: str) -> None:
            container = engine.find_container(id)
            if container is None:
                self.missing("container", id)
                return
            container.running = True
            self.reply(204, text=b"")

        def container_stop(self, query: dict[str, str], body: Any, id: str) -> None:
            container = engine.find_container(id)
            if container is None:
                self.missing("container", id)
                return
            container.running = False
            self.reply(204, text=b"")

        def container_inspect(self, query: dict[str, str], body: Any, id: str) -> None:
            container = engine.find_container(id)
            if container is None:
                self.missing("container", id)
                return
            status = "running" if container.running else "exited"
            self.reply(
                200,
                {
                    "Id": container.id,
                    "Image": container.image,
                    "State": {"Status": status, "Running": container.running},
                    "Config": {
                        "Env": [f"{k}={v}" for k, v in container.env.items()],
                        "User": container.create_body.get("User") or "",
                    },
                },
            )

        def container_remove(self, query: dict[str, str], body: Any, id: str) -> None:
            container = engine.find_container(id)
            if container is None:
                self.missing("container", id)
                return
            if container.running and query.get("force") not in ("1", "true", "True"):
                self.reply(409, {"message": "container is running: stop it or use force"})
                return
            del engine.containers[id]
            self.reply(204, text=b"")

        def archive_put(self, query: dict[str, str], body: Any, id: str) -> None:
            container = engine.find_container(id)
            if container is None:
                self.missing("container", id)
                return
            target = query["path"]
            if target not in container.files or container.files[target] is not None:
                self.reply(404, {"message": f"no such directory: {target}"})
                return
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                for member in tar.getmembers():
                    extracted = tar.extractfile(member)
                    path = posixpath.join(target, member.name)
                    _mkdirs(container.files, posixpath.dirname(path))
                    container.files[path] = extracted.read() if extracted else None
            self.reply(200, text=b"")

        def exec_create(self, query: dict[str, str], body: Any, id: str) -> None:
            container = engine.find_container(id)
            if container is None:
                self.missing("container", id)
                return
            if not container.running:
                self.reply(409, {"message": f"container {id} is not running"})
                return
            exec_id = engine.new_id()
            engine.execs[exec_id] = Exec(id, body["Cmd"], body.get("WorkingDir") or container.workdir)
            self.reply(201, {"Id": exec_id})

        def exec_start(self, query: dict[str, str], body: Any, id: str) -> None:
            run = engine.execs[id]
            run.exit_code, frames = _run(engine.containers[run.container], run.cmd, run.workdir)
            self.wfile.write(
                b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
            )
            self.wfile.flush()
            time.sleep(UPGRADE_PAUSE)
            for stream, data in frames:
                self.wfile.write(struct.pack(">BxxxL", stream, len(data)) + data)
            self.wfile.flush()
            self.close_connection = True

        def exec_inspect(self, query: dict[str, str], body: Any, id: str) -> None:
            run = engine.execs[id]
            self.reply(200, {"ID": id, "Running": False, "ExitCode": run.exit_code})

        def commit(self, query: dict[str, str], body: Any) -> None:
            container = engine.find_container(query["container"])
            if container is None:
                self.missing("container", query["container"])
                return
            base = engine.images[container.image]
            name = f"{query['repo']}:{query.get('tag') or 'latest'}" if query.get("repo") else None
            image = engine.add_image(name, container.files, base=base)
            for labels in _changes(query):
                image.labels.update(labels)
            self.reply(201, {"Id": image.id})

    return Handler


# -- the tiny shell ----------------------------------------------------------------

_WRAPPER_MARK = "# domarkx: run"


def _run(container: Container, cmd: list[str], workdir: str) -> tuple[int, list[tuple[int, bytes]]]:
    """Run an exec's argv; return its exit code and its (stream, bytes) frames."""
    assert cmd[:2] == ["sh", "-c"], cmd
    script, params = cmd[2], cmd[4:]
    if script.startswith(_WRAPPER_MARK):
        command, seconds = params
        return _Shell(container, workdir, [], timeout=float(seconds)).run(command)
    return _Shell(container, workdir, params).run(script)


class _TimedOut(Exception):
    pass


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Shell:
    def __init__(self, container: Container, cwd: str, params: list[str], timeout: float | None = None) -> None:
        self.container, self.cwd, self.params, self.timeout = container, cwd, params, timeout
        self.frames: list[tuple[int, bytes]] = []

    def run(self, script: str) -> tuple[int, list[tuple[int, bytes]]]:
        status = 0
        try:
            for sequence in re.split(r"\s*;\s*|\n", script):
                for command in re.split(r"\s*&&\s*", sequence):
                    if command.strip():
                        status = self.command(command)
                        if status != 0:
                            break
        except _Exit as done:
            status = done.code
        except _TimedOut:
            status = 124
        return status, self.frames

    def expand(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name.isdigit():
                index = int(name) - 1
                return self.params[index] if 0 <= index < len(self.params) else ""
            return self.container.env.get(name, "")

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)

    def path(self, name: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, name))

    def command(self, text: str) -> int:
        words = shlex.split(self.expand(text))
        out, append, to_stderr = None, False, False
        while len(words) >= 2 and words[-2] in (">", ">>"):
            out, append = words[-1], words[-2] == ">>"
            words = words[:-2]
        if words and words[-1] in (">&2", "1>&2"):
            to_stderr, words = True, words[:-1]
        buffer: list[bytes] = []
        status = self.builtin(words[0], [w for w in words[1:] if w != "--"], buffer)
        data = b"".join(buffer)
        if out is not None:
            target = self.path(out)
            old = (self.container.files.get(target) or b"") if append else b""
            self.container.files[target] = old + data
        elif data:
            self.frames.append((2 if to_stderr else 1, data))
        return status

    def error(self, message: str) -> int:
        self.frames.append((2, f"sh: {message}\n".encode()))
        return 1

    def builtin(self, name: str, args: list[str], out: list[bytes]) -> int:
        files = self.container.files
        if name == "echo":
            newline = not (args and args[0] == "-n")
            out.append((" ".join(args[0 if newline else 1 :]) + ("\n" if newline else "")).encode())
        elif name == "cat":
            for arg in args:
                data = files.get(self.path(arg))
                if data is None:
                    return self.error(f"cat: {arg}: No such file or directory")
                out.append(data)
        elif name == "ls":
            target = self.path(next((a for a in args if not a.startswith("-")), "."))
            if target not in files or files[target] is not None:
                return self.error(f"ls: {target}: No such file or directory")
            children = sorted(
                posixpath.basename(p) + ("/" if files[p] is None else "")
                for p in files
                if posixpath.dirname(p) == target and p != target
            )
            out.append("".join(f"{c}\n" for c in children).encode())
        elif name == "mkdir":
            for arg in (a for a in args if a != "-p"):
                _mkdirs(files, self.path(arg))
        elif name == "rm":
            for arg in (a for a in args if a != "-f"):
                files.pop(self.path(arg), None)
        elif name == "sleep":
            if self.timeout is not None and float(args[0]) >= self.timeout:
                raise _TimedOut
        elif name == "exit":
            raise _Exit(int(args[0]) if args else 0)
        elif name == "pwd":
            out.append(f"{self.cwd}\n".encode())
        elif name == "id":
            out.append(b"0\n")
        elif name in ("true", "false"):
            return int(name == "false")
        else:
            self.frames.append((2, f"sh: {name}: not found\n".encode()))
            return 127
        return 0


def _mkdirs(files: Files, path: str) -> None:
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts) + 1):
        files.setdefault("/" + "/".join(parts[:depth]), None)
