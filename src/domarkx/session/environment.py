"""What ``domarkx doctor`` checks besides the store: can this machine run what the instances need?

* bubblewrap, present *and* working (user namespaces may be off): without it
  commands and kernels run unconfined, with a warning, under ``sandbox: auto``;
* the Python kernel's packages (``ipykernel``, ``jupyter_client``), for ``python`` resources;
* the Docker engine, reachable, for ``docker_sandbox`` resources (asked only when an
  instance has one, or when everything is asked for: it may take a few seconds);
* the store's schema version against this domarkx's.

A check that fails for something an existing instance uses is a problem (doctor
exits 1); otherwise it is a warning.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from domarkx.data.schema import MIGRATIONS
from domarkx.data.store import Store

DOCKER_TIMEOUT = 5


@dataclass(frozen=True)
class Finding:
    """One check of the machine: what, whether it holds, and what to do if not."""

    what: str
    ok: bool
    detail: str
    hint: str | None = None
    needed: bool = False
    """Something stored needs it: a failure is a problem, not a warning."""

    @property
    def level(self) -> str:
        return "ok" if self.ok else "problem" if self.needed else "warning"


def check(store: Store, *, everything: bool = False) -> list[Finding]:
    """Every check that applies: Docker only if an instance has a docker_sandbox resource, or ``everything``."""
    used = {row.resource.type for row in store.workspaces.of_instances()}
    found = [_bubblewrap(), _kernel("python" in used)]
    if everything or "docker_sandbox" in used:
        found.append(_docker("docker_sandbox" in used))
    found.append(_schema(store))
    return found


def _bubblewrap() -> Finding:
    from domarkx.workspace.plugins import _sandbox

    path = _sandbox.bwrap_path()
    if path is None:
        return Finding(
            "bubblewrap",
            False,
            "not installed: commands and Python kernels run unconfined (sandbox: auto warns each time)",
            hint="apt-get install bubblewrap (or your system's package)",
        )
    if not _sandbox.bwrap_works():
        return Finding(
            "bubblewrap",
            False,
            f"{path} is installed but cannot start a sandbox here (user namespaces disabled?)",
            hint="enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1), "
            "or run in a container that allows them",
        )
    return Finding("bubblewrap", True, f"{path} works: commands and kernels are confined")


def _kernel(needed: bool) -> Finding:
    missing = [name for name in ("ipykernel", "jupyter_client") if importlib.util.find_spec(name) is None]
    if missing:
        return Finding(
            "python kernels",
            False,
            f"{' and '.join(missing)} not importable: python resources cannot run",
            hint="pip install 'domarkx[python]'",
            needed=needed,
        )
    return Finding("python kernels", True, "ipykernel and jupyter_client are importable")


def _docker(needed: bool) -> Finding:
    import os

    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        version = _engine_version(host)
    except OSError as exc:
        return Finding(
            "docker engine",
            False,
            f"not reachable at {host}: {exc.strerror or exc}",
            hint="start Docker, or set DOCKER_HOST (e.g. unix:///run/user/1000/docker.sock)",
            needed=needed,
        )
    return Finding("docker engine", True, f"Docker {version} answers at {host}")


def _engine_version(host: str) -> str:
    """Ask the engine at ``host`` for its version over its HTTP API (``GET /version``).

    Plain sockets rather than the Docker SDK: a check must not need the SDK
    installed, and the SDK leaves a socket open when the engine is not there.
    An engine behind TLS or SSH is asked through the SDK.
    """
    import json
    import os
    import socket

    scheme, _, where = host.partition("://")
    if scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(DOCKER_TIMEOUT)
    elif scheme == "tcp" and not os.environ.get("DOCKER_TLS_VERIFY"):
        address, _, port = where.rpartition(":")
        sock = socket.create_connection((address, int(port or 2375)), timeout=DOCKER_TIMEOUT)
    else:
        return _sdk_version()
    with sock:
        if scheme == "unix":
            sock.connect(where)
        sock.sendall(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise OSError(f"unexpected answer: {head[:60]!r}")
    try:
        return str(json.loads(body).get("Version", "?"))
    except ValueError as exc:
        raise OSError("the answer is not the engine's JSON") from exc


def _sdk_version() -> str:
    if importlib.util.find_spec("docker") is None:
        raise OSError("the Docker SDK is needed for this DOCKER_HOST: pip install 'domarkx[docker]'")
    import docker

    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT)
        try:
            return str(client.version().get("Version", "?"))
        finally:
            client.close()
    except docker.errors.DockerException as exc:
        raise OSError(" ".join(str(exc).split())[:200]) from exc


def _schema(store: Store) -> Finding:
    version = int(store.query("PRAGMA user_version")[0][0])
    return Finding(
        "store schema", version == len(MIGRATIONS), f"version {version} (this domarkx writes {len(MIGRATIONS)})"
    )
