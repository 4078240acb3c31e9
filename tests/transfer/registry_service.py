"""A real OCI registry for the tests: the CNCF distribution registry (Debian's ``docker-registry``).

Each :class:`Registry` is a ``docker-registry serve`` process on 127.0.0.1 with
filesystem storage in a temporary directory, plain HTTP or TLS (a self-signed
certificate made here with ``openssl``) and optionally basic auth (an
``htpasswd -B`` file). :class:`CountingProxy` sits in front of one to count the
bytes a client sends and to kill the registry mid-transfer (fault injection).

``.ci/registry.sh`` installs the packages; ``DOMARKX_REGISTRY_BIN`` may name the
binary. Without them the tests skip, or fail under ``CI=1``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

USER, PASSWORD = "alice", "s3cret-Pa55"


def need(program: str, package: str) -> str:
    """The path of ``program``; skip (or under CI=1 fail) the test when it is missing."""
    found = shutil.which(program)
    if found is None:
        message = f"{program} is missing: install {package} (.ci/registry.sh does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def registry_binary() -> str:
    configured = os.environ.get("DOMARKX_REGISTRY_BIN")
    return configured or need("docker-registry", "docker-registry")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    openssl = need("openssl", "openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def make_htpasswd(directory: Path) -> Path:
    htpasswd = need("htpasswd", "apache2-utils")
    path = directory / "htpasswd"
    done = subprocess.run([htpasswd, "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True)
    path.write_text(done.stdout)
    return path


class Registry:
    """One registry process; ``host`` is ``127.0.0.1:PORT``, ``storage`` its blob store on disk."""

    def __init__(
        self,
        root: Path,
        *,
        tls: tuple[Path, Path] | None = None,
        htpasswd: Path | None = None,
        token: TokenServer | None = None,
    ) -> None:
        self.root = root
        self.storage = root / "storage"
        self.tls = tls
        self.htpasswd = htpasswd
        self.token = token
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [
            "version: 0.1",
            "log: {level: error, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {self.storage}}}, delete: {{enabled: true}},"
            " maintenance: {uploadpurging: {enabled: false}}}",
            f"http: {{addr: '{self.host}', secret: domarkx-test-secret"
            + (f", tls: {{certificate: {self.tls[0]}, key: {self.tls[1]}}}" if self.tls else "")
            + "}",
        ]
        if self.htpasswd:
            lines.append(f"auth: {{htpasswd: {{realm: domarkx-test, path: {self.htpasswd}}}}}")
        if self.token:
            lines.append(self.token.config())
        return "\n".join(lines) + "\n"

    def start(self) -> Registry:
        config = self.root / "config.yml"
        config.write_text(self.config())
        with (self.root / "registry.log").open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen([registry_binary(), "serve", str(config)], stdout=log, stderr=log)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        context = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else None
        url = f"{'https' if self.tls else 'http'}://{self.host}/v2/"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the registry exited: {(self.root / 'registry.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url, timeout=2, context=context).close()
                return
            except urllib.error.HTTPError:
                return  # 401: it is up, and asks for credentials
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        raise RuntimeError("the registry did not start within 20 s")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def blob_file(self, digest: str) -> Path:
        hexd = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


class CountingProxy:
    """A TCP relay to a registry that counts the bytes clients send, and can act on a count."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sent = 0
        self.trigger: tuple[int, Callable[[], None]] | None = None
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reset(self) -> int:
        with self._lock:
            sent, self.sent = self.sent, 0
        return sent

    def when_sent(self, count: int, action: Callable[[], None]) -> None:
        """Call ``action`` once, when clients have sent ``count`` more bytes."""
        with self._lock:
            self.trigger = (self.sent + count, action)

    def close(self) -> None:
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(65536):
                if counted:
                    self._count(len(data))
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def _count(self, size: int) -> None:
        action = None
        with self._lock:
            self.sent += size
            if self.trigger is not None and self.sent >= self.trigger[0]:
                action, self.trigger = self.trigger[1], None
        if action is not None:
            action()


IDENTITY_TOKEN = "refresh-me-0123456789"


class TokenServer:
    """A token service for a registry in ``auth: token`` mode: the Bearer flow Docker Hub, GHCR and Harbor use.

    It answers ``GET /token?service=…&scope=…`` (basic auth: our user) and the
    OAuth2 refresh grant (``POST /token``, an identity token) with a JWT
    (RS256, signed by ``openssl``) granting the scopes asked for; anyone else
    gets a token granting nothing, as public registries give anonymous users.
    """

    def __init__(self, directory: Path, service: str = "domarkx-test") -> None:
        openssl = need("openssl", "openssl")
        self.openssl, self.service, self.issuer = openssl, service, "domarkx-test-issuer"
        self.cert, self.key = directory / "token-cert.pem", directory / "token-key.pem"
        subprocess.run(
            [
                *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key)),
                *("-out", str(self.cert), "-days", "2", "-subj", "/CN=token-issuer"),
            ],
            check=True,
            capture_output=True,
        )
        der = subprocess.run(
            [openssl, "x509", "-in", str(self.cert), "-outform", "DER"], check=True, capture_output=True
        )
        self.x5c = base64.b64encode(der.stdout).decode()
        self.requests: list[tuple[str, list[str]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def config(self) -> str:
        return (
            f"auth: {{token: {{realm: '{self.realm}', service: {self.service}, issuer: {self.issuer},"
            f" rootcertbundle: {self.cert}}}}}"
        )

    def token(self, subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",") if subject else []})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300, "nbf": now - 10}
        claims |= {"iat": now, "jti": os.urandom(8).hex(), "access": access}
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = subprocess.run(
            [self.openssl, "dgst", "-sha256", "-sign", str(self.key)], input=signing.encode(), capture_output=True
        ).stdout
        return f"{signing}.{_b64(signature)}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                given = self.headers.get("Authorization")
                if given is not None and given != expected:
                    self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "wrong password"}]})
                    return
                scopes = query.get("scope", [])
                server.requests.append(("basic" if given else "anonymous", scopes))
                self._send(200, {"token": server.token(USER if given else "", scopes)})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != [IDENTITY_TOKEN]:
                    self._send(401, {"error": "invalid_grant"})
                    return
                scopes = " ".join(form.get("scope", [""])).split()
                server.requests.append(("refresh", scopes))
                self._send(200, {"access_token": server.token(USER, scopes)})

            def _send(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class RedirectingFront:
    """An HTTP front for a registry that sends blob downloads elsewhere, as registries on object storage do.

    Every request is passed to the registry, except ``GET …/blobs/<digest>``, answered with a 307 to a
    "storage" server on another host (127.0.0.2), which serves the blob and records the headers it got.
    """

    def __init__(self, registry: Registry) -> None:
        import httpx2

        self.registry = registry
        self.storage_headers: list[dict[str, str]] = []
        self._upstream = httpx2.Client(base_url=f"http://{registry.host}", timeout=30)
        self._front = ThreadingHTTPServer(("127.0.0.1", 0), self._front_handler())
        self._storage = ThreadingHTTPServer(("127.0.0.2", 0), self._storage_handler())
        for server in (self._front, self._storage):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._front.server_address[1]}"

    def close(self) -> None:
        for server in (self._front, self._storage):
            server.shutdown()
            server.server_close()
        self._upstream.close()

    def _front_handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                if self.command == "GET" and "/blobs/sha256:" in self.path:
                    digest = self.path.rsplit("/", 1)[-1]
                    self.send_response(307)
                    self.send_header("Location", f"http://127.0.0.2:{front._storage.server_address[1]}/{digest}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                reply = front._upstream.request(self.command, self.path, headers=headers, content=body)
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value.replace(front.registry.host, front.host))
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.content)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

        return Handler

    def _storage_handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                front.storage_headers.append(dict(self.headers.items()))
                data = front.registry.blob_file(self.path.strip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
