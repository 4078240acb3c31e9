"""The ``docker_sandbox`` resource: a container whose versions are committed images.

The design's own example. A resource is one container started from ``image``
with nothing from the host: no mounts, no network (unless ``network`` says
otherwise), only the ``environment`` written in the config. Tools run through
``exec``; ``commit_version`` is ``docker commit`` and the image id is the
version; ``load_version`` replaces the container with a new one from that
image, so any resource on the same engine can load any version.

The engine is reached with the Docker SDK's usual settings (``DOCKER_HOST``,
``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``), so it may be remote. Images and
containers live in the engine; the resource directory keeps only
``state.json``: the config, the container id, the current version and whether
anything ran since the last commit (so an unchanged resource commits to the
same id).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import math
import os
import posixpath
import secrets
import shutil
import tarfile
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domarkx.errors import DomarkxError, ReferenceNotFound
from domarkx.tools.kernel import Capped
from domarkx.tools.schema import parameters_schema
from domarkx.workspace.plugin import CodeRunner, Plugin, Resource, ToolError, ToolSpec, resource_path
from domarkx.workspace.plugins._state import parse_config, read_state, write_state

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

KEEPALIVE = "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"
"""The container's main process: idle, and quick to stop."""

RUN_SCRIPT = """\
# domarkx: run "$1" in a process group of its own, killed after "$2" seconds (exit 124)
if command -v setsid >/dev/null 2>&1; then setsid sh -c "$1" & else sh -c "$1" & fi
pid=$!
(
  trap 'kill "$nap"; exit 0' TERM
  sleep "$2" & nap=$!
  wait "$nap"
  trap '' TERM
  kill -s KILL -- -"$pid" || kill -s KILL "$pid"
  exit 124
) </dev/null >/dev/null 2>&1 &
watcher=$!
wait "$pid" 2>/dev/null
status=$?
kill -s KILL -- -"$pid" 2>/dev/null
kill "$watcher" 2>/dev/null
wait "$watcher" 2>/dev/null
if [ $? -eq 124 ]; then exit 124; fi
exit "$status"
"""
"""Runs a command under a time-out inside the container; nothing it started outlives it.

The time-out is enforced in the container, not by the client, so it holds on a
remote engine however the connection behaves. When the command ends, what it
left running in the background is killed too, as ``local_shell`` does; without
``setsid`` in the image only the command's own shell can be killed. Like
coreutils' ``timeout``, exit status 124 means "timed out", so a command that
itself exits 124 is reported as timed out.
"""

CAT_SCRIPT = 'cat -- "$1"'
LIST_SCRIPT = 'ls -1Ap -- "$1"'
MKDIR_SCRIPT = 'mkdir -p -- "$1"'
TIMED_OUT = 124


class DockerSandboxConfig(BaseModel):
    """The ``workspace-config`` options of a ``docker_sandbox`` resource."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1)
    workdir: str = "/workspace"
    """Where commands run and file paths are relative to (created if missing)."""
    timeout: float = Field(60.0, gt=0, le=86_400)
    """Seconds a command may run: the default for a call and the most a call may ask for."""
    max_output: int = Field(20_000, ge=200)
    network: str = "none"
    """A Docker network mode: ``none`` (the default), ``bridge``, ``host`` or a network's name."""
    environment: dict[str, str] = Field(default_factory=dict)
    """The container's whole environment beyond the image's; nothing is taken from the host."""

    @field_validator("workdir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path in the container")
        return posixpath.normpath(value)


class DockerState(BaseModel):
    config: DockerSandboxConfig
    container: str
    version: str
    dirty: bool = False
    commits: int = 0


class RunCommandArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(min_length=1, description="A shell command, run with `sh -c` in the working directory.")
    timeout: float | None = Field(
        None, gt=0, description="Seconds before the command is killed (at most the resource's limit)."
    )


class ReadFileArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, description="File path relative to the working directory.")


class WriteFileArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, description="File path relative to the working directory.")
    content: str = Field(description="The complete new content (UTF-8).")


class ListDirArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(".", description="Directory path relative to the working directory.")


_TOOLS: dict[str, tuple[type[BaseModel], str]] = {
    "run_command": (
        RunCommandArgs,
        "Run a shell command in the sandbox container. Returns exit_code, stdout, stderr and timed_out.",
    ),
    "read_file": (ReadFileArgs, "Read a text file from the sandbox container."),
    "write_file": (WriteFileArgs, "Create or replace a file in the sandbox container."),
    "list_dir": (ListDirArgs, "List a directory of the sandbox container; directories end with '/'."),
}


def engine_address() -> str:
    """Where the SDK will look for the engine, for error messages."""
    return os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"


@contextlib.contextmanager
def docker_client(timeout: float = 60.0) -> Iterator[DockerClient]:
    """A connected client, closed afterwards; an unreachable engine is one clear error.

    ``timeout`` bounds each API request, so it must exceed the longest command.
    """
    import docker

    _probe_engine()
    try:
        client = docker.from_env(timeout=math.ceil(timeout) + 30)
    except docker.errors.DockerException as exc:
        raise DomarkxError(f"cannot talk to the Docker engine at {engine_address()}: {exc}") from exc
    try:
        with _translated():
            yield client
    finally:
        client.close()


def _probe_engine() -> None:
    """Ping the engine before the SDK negotiates a version with it.

    The SDK's own negotiation leaks its connection when the engine is not there;
    this probe is closed either way.
    """
    import docker
    import requests
    from docker.utils import kwargs_from_env

    settings = kwargs_from_env()
    base_url = settings.get("base_url") or docker.constants.DEFAULT_UNIX_SOCKET
    if base_url.startswith(("unix://", "http+unix://")):
        # The SDK leaks a socket when it cannot connect to a Unix socket; look first.
        path = "/" + base_url.split("://", 1)[1].lstrip("/")
        if not os.path.exists(path):
            raise DomarkxError(f"cannot reach a Docker engine at {engine_address()}: no socket at {path}", hint=_HINT)
    try:
        probe = docker.APIClient(version=docker.constants.DEFAULT_DOCKER_API_VERSION, timeout=30, **settings)
    except docker.errors.DockerException as exc:
        raise DomarkxError(f"bad Docker settings for {engine_address()}: {exc}", hint=_HINT) from exc
    try:
        probe.get(f"{probe.base_url}/_ping").raise_for_status()
    except requests.RequestException as exc:
        raise DomarkxError(f"cannot reach a Docker engine at {engine_address()}: {exc}", hint=_HINT) from exc
    finally:
        probe.close()


_HINT = "start Docker, or set DOCKER_HOST (e.g. DOCKER_HOST=tcp://host:2375 or ssh://user@host)"


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Docker SDK errors become domarkx errors at this boundary."""
    import docker
    import requests

    try:
        yield
    except docker.errors.DockerException as exc:
        raise DomarkxError(f"Docker engine at {engine_address()}: {exc}") from exc
    except requests.RequestException as exc:
        raise DomarkxError(f"lost the Docker engine at {engine_address()}: {exc}") from exc


class DockerSandboxPlugin(Plugin):
    """Resources that are Docker containers, versioned by ``docker commit``."""

    code = CodeRunner(
        tool="run_command", argument="command", languages=frozenset({"sh", "shell", "bash", "zsh", "console"})
    )
    config_model = DockerSandboxConfig

    @property
    def type(self) -> str:
        return "docker_sandbox"

    # -- lifecycle -----------------------------------------------------------------

    def create_resource(self, config: dict[str, Any]) -> Resource:
        parsed = parse_config(DockerSandboxConfig, config, self.type)
        resource_id = f"docker-{secrets.token_hex(6)}"
        with docker_client() as client:
            image = _ensure_image(client, parsed.image)
            container = _new_container(client, image.id, parsed, resource_id)
        folder = self.context.resource_dir(resource_id)
        write_state(folder, DockerState(config=parsed, container=container.id, version=image.id))
        return Resource(id=resource_id, name=self.type, type=self.type, config=parsed.model_dump())

    def destroy_resource(self, resource_id: str) -> None:
        import docker

        state = self._state(resource_id)
        with docker_client() as client, contextlib.suppress(docker.errors.NotFound):
            client.containers.get(state.container).remove(force=True)
        shutil.rmtree(resource_path(self.context.home, resource_id), ignore_errors=True)

    def close(self, resource_id: str) -> None:
        """Stop the container (its files stay; background processes end)."""
        import docker

        state = self._state(resource_id)
        with docker_client() as client, contextlib.suppress(docker.errors.NotFound):
            container = client.containers.get(state.container)
            if container.status == "running":
                container.stop(timeout=5)

    # -- tools ---------------------------------------------------------------------

    @classmethod
    def describe_tools(cls) -> list[ToolSpec]:
        return [
            ToolSpec(name=name, description=text, parameters=parameters_schema(model))
            for name, (model, text) in _TOOLS.items()
        ]

    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        return self.describe_tools()

    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        if tool_name not in _TOOLS:
            raise ToolError(
                f"the docker_sandbox resource has no tool {tool_name!r}",
                hint=f"its tools: {', '.join(_TOOLS)}",
            )
        model = _TOOLS[tool_name][0]
        try:
            args = model.model_validate(kwargs)
        except ValidationError as exc:
            raise ToolError(f"bad arguments for {tool_name}: {exc.errors()[0]['msg']}") from exc
        if isinstance(args, RunCommandArgs):
            return self.run_command(resource_id, args.command, timeout=args.timeout)
        if isinstance(args, ReadFileArgs):
            return self.read_file(resource_id, args.path)
        if isinstance(args, WriteFileArgs):
            return self.write_file(resource_id, args.path, args.content)
        assert isinstance(args, ListDirArgs)
        return self.list_dir(resource_id, args.path)

    def run_command(self, resource_id: str, command: str, *, timeout: float | None = None) -> dict[str, Any]:
        state = self._mark_dirty(resource_id)
        limit = state.config.timeout if timeout is None else min(timeout, state.config.timeout)
        seconds = str(max(1, math.ceil(limit)))
        with docker_client(limit) as client:
            container = self._container(client, resource_id)
            code, stdout, stderr = _exec(client, container, [RUN_SCRIPT, command, seconds], state.config)
        timed_out = code == TIMED_OUT
        return {
            "exit_code": None if timed_out else code,
            "stdout": stdout,
            "stderr": stderr,
            "timed_out": timed_out,
        }

    def read_file(self, resource_id: str, path: str) -> str:
        state = self._state(resource_id)
        full = _inside(state.config.workdir, path)
        with docker_client() as client:
            container = self._container(client, resource_id)
            code, stdout, stderr = _exec(client, container, [CAT_SCRIPT, full], state.config)
        if code != 0:
            raise ToolError(f"cannot read {path}: {stderr.strip() or f'exit code {code}'}")
        return stdout

    def write_file(self, resource_id: str, path: str, content: str) -> str:
        state = self._mark_dirty(resource_id)
        full = _inside(state.config.workdir, path)
        parent, name = posixpath.split(full)
        data = content.encode("utf-8")
        with docker_client() as client:
            container = self._container(client, resource_id)
            code, _, stderr = _exec(client, container, [MKDIR_SCRIPT, parent], state.config)
            if code != 0:
                raise ToolError(f"cannot create the directory of {path}: {stderr.strip()}")
            if not container.put_archive(parent, _tar_one(name, data)):
                raise ToolError(f"the engine refused to write {path}")
        return f"wrote {len(data)} bytes to {path}"

    def list_dir(self, resource_id: str, path: str = ".") -> str:
        state = self._state(resource_id)
        full = _inside(state.config.workdir, path)
        with docker_client() as client:
            container = self._container(client, resource_id)
            code, stdout, stderr = _exec(client, container, [LIST_SCRIPT, full], state.config)
        if code != 0:
            raise ToolError(f"cannot list {path}: {stderr.strip() or f'exit code {code}'}")
        return stdout.rstrip("\n") or "(empty directory)"

    # -- versions ------------------------------------------------------------------

    def get_version(self, resource_id: str) -> str:
        return self._state(resource_id).version

    def commit_version(self, resource_id: str) -> str:
        state = self._state(resource_id)
        if not state.dirty:
            return state.version
        with docker_client() as client:
            container = self._container(client, resource_id)
            image = container.commit(repository=f"domarkx/{resource_id}", tag=f"v{state.commits + 1}")
        state = state.model_copy(update={"version": image.id, "dirty": False, "commits": state.commits + 1})
        write_state(self.context.resource_dir(resource_id), state)
        return str(image.id)

    def load_version(self, resource_id: str, version_id: str) -> None:
        import docker

        state = self._state(resource_id)
        with docker_client() as client:
            try:
                image = client.images.get(version_id)
            except docker.errors.ImageNotFound as exc:
                raise ReferenceNotFound(
                    f"no image {version_id} on the Docker engine at {engine_address()}",
                    hint="a docker_sandbox version lives in the engine that committed it",
                ) from exc
            with contextlib.suppress(docker.errors.NotFound):
                client.containers.get(state.container).remove(force=True)
            container = _new_container(client, image.id, state.config, resource_id)
        state = state.model_copy(update={"container": container.id, "version": image.id, "dirty": False})
        write_state(self.context.resource_dir(resource_id), state)

    # -- helpers -------------------------------------------------------------------

    def _state(self, resource_id: str) -> DockerState:
        return read_state(resource_path(self.context.home, resource_id), DockerState)

    def _mark_dirty(self, resource_id: str) -> DockerState:
        """Record that the container may change *before* it does, so a crash errs towards a new commit."""
        state = self._state(resource_id)
        if not state.dirty:
            state = state.model_copy(update={"dirty": True})
            write_state(self.context.resource_dir(resource_id), state)
        return state

    def _container(self, client: DockerClient, resource_id: str) -> Container:
        """The resource's container, running; recreated from the last version if it was removed."""
        import docker

        state = self._state(resource_id)
        try:
            container = client.containers.get(state.container)
        except docker.errors.NotFound:
            container = _new_container(client, state.version, state.config, resource_id)
            write_state(self.context.resource_dir(resource_id), state.model_copy(update={"container": container.id}))
            return container
        if container.status != "running":
            container.start()
        return container


def _ensure_image(client: DockerClient, name: str) -> Any:
    import docker

    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        pass
    try:
        return client.images.pull(name)
    except docker.errors.DockerException as exc:
        raise DomarkxError(
            f"image {name!r} is not on the Docker engine and could not be pulled: {exc}",
            hint=f"pull or build it on the engine at {engine_address()} first",
        ) from exc


def _new_container(client: DockerClient, image: str, config: DockerSandboxConfig, resource_id: str) -> Container:
    container = client.containers.create(
        image,
        entrypoint=["sh", "-c"],
        command=[KEEPALIVE],
        working_dir=config.workdir,
        environment=config.environment,
        network_mode=config.network,
        labels={"domarkx.resource": resource_id},
    )
    container.start()
    return container


def _exec(
    client: DockerClient, container: Container, script: list[str], config: DockerSandboxConfig
) -> tuple[int, str, str]:
    """Run ``sh -c script[0]`` with ``script[1:]`` as "$1"…; return exit code and capped output.

    Output is decoded and capped while it streams, so a command that floods its
    output costs neither memory nor the model's context.
    """
    api = client.api
    argv = ["sh", "-c", script[0], "domarkx", *script[1:]]
    exec_id = api.exec_create(container.id, argv, workdir=config.workdir)["Id"]
    streams = [Capped(config.max_output // 2), Capped(config.max_output // 2)]
    decoders = [codecs.getincrementaldecoder("utf-8")(errors="replace") for _ in streams]
    output = api.exec_start(exec_id, stream=True, demux=True)
    try:
        for chunks in output:
            for stream, decoder, chunk in zip(streams, decoders, chunks, strict=True):
                if chunk:
                    stream.append(decoder.decode(chunk))
    finally:
        output.close()
        # CancellableStream.close() shuts the socket but leaves the HTTP response (and its
        # reference to the socket) open, which would leak the file descriptor.
        output._response.close()
    for stream, decoder in zip(streams, decoders, strict=True):
        stream.append(decoder.decode(b"", final=True))
    code = api.exec_inspect(exec_id)["ExitCode"]
    return int(code if code is not None else -1), streams[0].text(), streams[1].text()


def _inside(workdir: str, path: str) -> str:
    """``path`` resolved against ``workdir``; refused if it leaves it.

    A lexical check: it keeps the model's file tools in the working directory,
    while the container itself is the security boundary.
    """
    full = posixpath.normpath(posixpath.join(workdir, path))
    if full != workdir and not full.startswith(workdir.rstrip("/") + "/"):
        raise ToolError(f"{path!r} is outside the working directory {workdir}")
    return full


def _tar_one(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
