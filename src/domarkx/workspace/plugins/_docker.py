"""Talking to a Docker engine for ``docker_sandbox``: connecting, exec, archives.

Everything here speaks the Engine API through the Docker SDK's low-level
client, and turns the SDK's errors into domarkx's at this one boundary. The
plugin above it decides what to run; this module knows how.

Paths in the container are ``bytes`` (a file name may be any bytes): the SDK
would encode them as UTF-8 text in a query string, so the archive endpoints
are called with the path percent-encoded here instead.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import math
import os
import posixpath
import select
import struct
import tarfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from domarkx import paths
from domarkx.errors import DomarkxError, UsageError, one_line
from domarkx.tools.kernel import Capped
from domarkx.workspace.plugin import emit_output

if TYPE_CHECKING:
    from docker import APIClient, DockerClient

HINT = "start Docker, or set DOCKER_HOST (e.g. DOCKER_HOST=tcp://host:2375 or ssh://user@host)"
REQUEST_TIMEOUT = 120.0
"""Seconds an ordinary engine request may take (a commit of a large change, an export)."""
_HEADER = struct.Struct(">BxxxL")


def engine_address() -> str:
    """Where the SDK will look for the engine, for error messages."""
    return os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"


def connect() -> DockerClient:
    """A client of the engine ``DOCKER_HOST`` names; an unreachable engine is one clear error."""
    import docker

    _probe_engine()
    try:
        return docker.from_env(timeout=math.ceil(REQUEST_TIMEOUT))
    except docker.errors.DockerException as exc:
        raise DomarkxError(f"cannot talk to the Docker engine at {engine_address()}: {_message(exc)}") from exc


def _probe_engine() -> None:
    """Ping the engine before the SDK negotiates a version with it.

    The SDK's own negotiation leaks its connection when the engine is not there;
    this probe is closed either way.
    """
    import requests
    from docker.utils import kwargs_from_env

    import docker

    settings = kwargs_from_env()
    base_url = settings.get("base_url") or docker.constants.DEFAULT_UNIX_SOCKET
    if base_url.startswith(("unix://", "http+unix://")):
        # The SDK leaks a socket when it cannot connect to a Unix socket; look first.
        path = "/" + base_url.split("://", 1)[1].lstrip("/")
        if not os.path.exists(path):
            raise DomarkxError(f"cannot reach a Docker engine at {engine_address()}: no socket at {path}", hint=HINT)
    try:
        probe = docker.APIClient(version=docker.constants.DEFAULT_DOCKER_API_VERSION, timeout=30, **settings)
    except docker.errors.DockerException as exc:
        raise DomarkxError(f"bad Docker settings for {engine_address()}: {_message(exc)}", hint=HINT) from exc
    try:
        probe.get(f"{probe.base_url}/_ping").raise_for_status()
    except requests.RequestException as exc:
        raise DomarkxError(f"cannot reach a Docker engine at {engine_address()}: {exc}", hint=HINT) from exc
    finally:
        probe.close()


@contextlib.contextmanager
def translated(timeout: float = REQUEST_TIMEOUT, api: APIClient | None = None) -> Iterator[None]:
    """Docker SDK errors become domarkx errors; ``api`` waits up to ``timeout`` per request meanwhile."""
    import requests

    import docker

    saved = api.timeout if api is not None else None
    if api is not None:
        api.timeout = math.ceil(timeout)
    try:
        yield
    except docker.errors.DockerException as exc:
        raise DomarkxError(f"Docker engine at {engine_address()}: {_message(exc)}") from exc
    except requests.RequestException as exc:
        raise DomarkxError(f"lost the Docker engine at {engine_address()}: {one_line(str(exc))}") from exc
    finally:
        if api is not None:
            api.timeout = saved


def _message(exc: Exception) -> str:
    """The engine's own words when it gave some (``explanation``), on one line."""
    explanation = getattr(exc, "explanation", None)
    return one_line(str(explanation or exc))


# -- exec ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exec:
    """One process to run in a container and how to treat its output."""

    argv: list[str]
    workdir: str | None = None
    user: str | None = None
    """``None``: the container's user."""
    stdin: bytes | None = None
    limit: float = 60.0
    """Seconds the process is expected to take; the connection is given up a while after."""
    max_output: int = 20_000
    """Characters kept of stdout and stderr together (head and tail of each)."""
    stream: bool = False
    """Show the output as it comes (:func:`emit_output`)."""


def run(api: APIClient, container: str, spec: Exec) -> tuple[int, str, str]:
    """Run ``spec`` in ``container``; return its exit code and its capped stdout and stderr."""
    created = api.exec_create(
        container, spec.argv, stdin=spec.stdin is not None, workdir=spec.workdir, user=spec.user or ""
    )
    exec_id = created["Id"]
    sock = api.exec_start(exec_id, socket=True)
    raw = getattr(sock, "_sock", sock)
    streams = [Capped(spec.max_output // 2), Capped(spec.max_output // 2)]
    decoders = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in streams]
    feeder = _feed(raw, spec.stdin) if spec.stdin is not None else None
    try:
        for number, data in _frames(raw, time.monotonic() + spec.limit + 60):
            if number in (1, 2):
                text = decoders[number - 1].decode(data)
                streams[number - 1].append(text)
                if spec.stream and text:
                    emit_output(text)
    finally:
        if feeder is not None:
            feeder.join(timeout=5)
        response = getattr(sock, "_response", None)
        if response is not None:  # it holds the socket too: close it first, then the socket
            response.close()
        sock.close()
    for capped, decoder in zip(streams, decoders, strict=True):
        capped.append(decoder.decode(b"", final=True))
    code = api.exec_inspect(exec_id)["ExitCode"]
    return int(code if code is not None else -1), streams[0].text(), streams[1].text()


def _feed(raw: Any, data: bytes) -> threading.Thread:
    """Write ``data`` to the process's stdin, then close it, while its output is read."""

    def write() -> None:
        with contextlib.suppress(OSError):
            raw.sendall(data)
        with contextlib.suppress(OSError):
            raw.shutdown(1)  # SHUT_WR: the process reads end of file

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _frames(raw: Any, deadline: float) -> Iterator[tuple[int, bytes]]:
    """The multiplexed ``(stream, bytes)`` frames of an exec, until the engine closes the stream.

    The SDK's own reader waits forever on a silent connection; this one gives
    up at ``deadline`` (the process's own time-out is enforced in the container).
    """
    buffer = b""
    while True:
        while len(buffer) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + size:
                break
            yield stream, buffer[_HEADER.size : _HEADER.size + size]
            buffer = buffer[_HEADER.size + size :]
        remaining = deadline - time.monotonic()
        pending = getattr(raw, "pending", None)  # TLS: bytes already decrypted wait in the socket object
        ready = (pending is not None and pending() > 0) or select.select([raw], [], [], max(remaining, 0))[0]
        if remaining <= 0 or not ready:
            raise DomarkxError(f"the Docker engine at {engine_address()} stopped answering during a command")
        chunk = raw.recv(1 << 16)
        if not chunk:
            return
        buffer += chunk


# -- archives --------------------------------------------------------------------------


@contextlib.contextmanager
def _get_archive(api: APIClient, container: str, path: bytes) -> Iterator[Iterator[bytes]]:
    url = api._url("/containers/{0}/archive", container) + "?path=" + quote(path, safe="/")
    response = api._get(url, stream=True)
    try:
        api._raise_for_status(response)
        yield response.iter_content(1 << 16, decode_unicode=False)
    finally:
        response.close()


@contextlib.contextmanager
def archive(api: APIClient, container: str, path: bytes) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """The tar stream of ``path`` in the container, read up to its top entry (a file, or a directory).

    The entries below a directory follow (:func:`below`). The engine answers a
    path that is not UTF-8 with an empty archive, so then the nearest parent
    that works is asked and the entry found in its archive. The connection is
    closed on leaving, however much of the stream was read.
    """
    asked, rest = path, b""
    while True:
        with _get_archive(api, container, asked) as chunks, open_tar(chunks) as tar:
            top = tar.next()
            if top is not None:
                yield tar, _find(tar, top, rest) if rest else top
                return
        parent, name = posixpath.split(asked.rstrip(b"/"))
        if not name or parent == asked:
            raise DomarkxError(f"the Docker engine sent an empty archive of {paths.escape(path)}")
        asked, rest = parent, posixpath.join(name, rest) if rest else name


def _find(tar: tarfile.TarFile, top: tarfile.TarInfo, rest: bytes) -> tarfile.TarInfo:
    wanted = os.fsencode(top.name) + b"/" + rest
    for member in _onwards(tar):
        if os.fsencode(member.name) == wanted:
            return member
    raise DomarkxError(f"the Docker engine's archive lacks {paths.escape(rest)}")


def below(tar: tarfile.TarFile, top: tarfile.TarInfo) -> Iterator[tarfile.TarInfo]:
    """The entries under directory ``top``, as the archive goes on (a subtree comes in one piece)."""
    prefix = os.fsencode(top.name) + b"/"
    for member in _onwards(tar):
        if not os.fsencode(member.name).startswith(prefix):
            return
        yield member


def _onwards(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The entries after the ones read so far (iterating a TarFile starts again from its first)."""
    while (member := tar.next()) is not None:
        yield member


def put_archive(api: APIClient, container: str, path: str, data: bytes | IO[bytes]) -> None:
    """Unpack the tar ``data`` into directory ``path`` of the container.

    ``path`` is text: the engine cannot take a path that is not UTF-8 here, so
    callers unpack at the work dir with longer names in the archive instead.
    """
    url = api._url("/containers/{0}/archive", container) + "?path=" + quote(path, safe="/")
    response = api._put(url, data=data)
    api._raise_for_status(response)


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks, for :mod:`tarfile`'s stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def open_tar(chunks: Iterable[bytes]) -> tarfile.TarFile:
    """Read a tar stream member by member, names as bytes through ``surrogateescape``."""
    reader = io.BufferedReader(ChunkReader(chunks), 1 << 16)
    return tarfile.open(fileobj=reader, mode="r|", encoding="utf-8", errors="surrogateescape")


def _writer(fileobj: IO[bytes]) -> tarfile.TarFile:
    # GNU headers carry any bytes as a name; Go's archive/tar (the engine) reads them.
    return tarfile.open(
        fileobj=fileobj, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    )


def tar_file(name: bytes, data: bytes, *, owner: tuple[int, int], mode: int = 0o644) -> bytes:
    """A tar of one regular file, owned by ``owner`` (uid, gid) so a non-root user can change it later."""
    buffer = io.BytesIO()
    with _writer(buffer) as tar:
        info = tarfile.TarInfo(os.fsdecode(name))
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        info.uid, info.gid = owner
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_tree(source: Path, name: bytes, into: IO[bytes], *, owner: tuple[int, int]) -> None:
    """Write a tar of the host file or directory ``source``, named ``name``, owned by ``owner``.

    Links are kept as links (never followed); a FIFO, socket or device is refused,
    since reading one could block or leak what it stands for.
    """

    def entry(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if not (info.isfile() or info.isdir() or info.issym() or info.islnk()):
            raise UsageError(f"cannot copy {paths.escape(os.fsencode(info.name))}: not a regular file or directory")
        info.uid, info.gid = owner
        info.uname = info.gname = ""
        return info

    with _writer(into) as tar:
        tar.add(source, arcname=os.fsdecode(name), recursive=True, filter=entry)
