"""The ``docker_sandbox`` resource: a container whose versions are committed images.

The design's own example. A resource is one container started from ``image``
with nothing from the host: no mounts, no network, only the ``environment``
written in the config (mounts, a network and ``privileged`` are powers a user
must trust the document with). Tools run through ``exec``.

**Versions are images, one layer per change.** The first commit starts a
container from the base image, makes the work dir (owned by the image's user)
and commits it: every version, the first included, is an image of its own that
carries the work dir in its labels and needs nothing else to be loaded. A
commit is ``docker commit``, which adds one layer holding what changed in the
container; if that layer is empty the new image is dropped and the version
stays the same. For the next change to be a layer of its own, the container
must be based on the version just made: it is replaced by a new one from that
image, lazily, when a tool that may change something runs next (reads keep the
old one). Past :data:`SQUASH_AT` layers a version is flattened into a single
layer, before the storage driver's limit (125 for overlay2).

**References.** Each home tags the images it references
``domarkx/<home key>:<image id>``; :meth:`DockerSandboxPlugin.collect` removes
the tags of versions nothing refers to any more, and the engine deletes an
image once no tag and no other image needs it. Containers are labelled with
their resource, so tearing one down finds them even if its state was lost.

The engine is reached with the Docker SDK's usual settings (``DOCKER_HOST``,
``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``), so it may be remote. The resource
directory keeps only ``state.json``.
"""

from __future__ import annotations

import contextlib
import math
import os
import posixpath
import re
import secrets
import shutil
import tempfile
import weakref
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from domarkx import paths
from domarkx.errors import DomarkxError, PathEscapeError, ReferenceNotFound, UsageError
from domarkx.tools.schema import parameters_schema
from domarkx.workspace.plugin import (
    CodeRunner,
    Entry,
    Layer,
    Plugin,
    Resource,
    ResourceDiff,
    ToolError,
    ToolSpec,
    resource_path,
)
from domarkx.workspace.plugins import _docker, _docker_images, _docker_transfer
from domarkx.workspace.plugins._state import parse_config, read_state, write_state

if TYPE_CHECKING:
    from docker import APIClient

TYPE = "docker_sandbox"
KEEPALIVE = "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"
"""The container's main process: idle, and quick to stop."""

RUN_SCRIPT = """\
# domarkx: run "$1" in a process group of its own, killed after "$2" seconds (exit 124)
exec 3<&0
shell=sh
if command -v bash >/dev/null 2>&1; then shell=bash; fi
if command -v setsid >/dev/null 2>&1; then
  setsid "$shell" -c "$1" <&3 3<&- &
else
  "$shell" -c "$1" <&3 3<&- &
fi
pid=$!
exec 3<&-
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

The command runs with ``bash`` when the image has it, else ``sh``; its standard
input is the exec's (empty unless ``domarkx exec`` passes some). The time-out
is enforced in the container, not by the client, so it holds on a remote engine
however the connection behaves. When the command ends, what it left running in
the background is killed too, as ``local_shell`` does; without ``setsid`` in
the image only the command's own shell can be killed. Like coreutils'
``timeout``, exit status 124 means "timed out", so a command that itself exits
124 is reported as timed out.
"""

CAT_SCRIPT = 'cat -- "$1"'
LIST_SCRIPT = 'ls -1Ap -- "$1"'
MKDIR_SCRIPT = 'mkdir -p -- "$1"'
OWNER_SCRIPT = "id -u; id -g"
SETUP_SCRIPT = 'mkdir -p -- "$1" && chown -- "$2" "$1"'
"""Run as root in a new container: the work dir, owned by the image's (non-root) user."""
TIMED_OUT = 124
SQUASH_AT = 100
"""A version with more layers than this is flattened into one (overlay2 refuses more than 125)."""
LABEL_WORKDIR = _docker_images.LABEL_WORKDIR
LABEL_USER = _docker_images.LABEL_USER
LABEL_RESOURCE = "org.domarkx.resource"
LABEL_HOME = "org.domarkx.home"
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._+/-]*")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class DockerSandboxConfig(BaseModel):
    """The ``workspace-config`` options of a ``docker_sandbox`` resource."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    image: str = Field(min_length=1)
    workdir: str = "/workspace"
    """Where commands run and file paths are relative to (made, and owned by ``user``, if missing)."""
    user: str | None = None
    """The user commands run as (``name``, ``uid`` or ``uid:gid``); default: the image's ``USER``."""
    timeout: float = Field(60.0, gt=0, le=86_400)
    """Seconds a command may run: the default for a call and the most a call may ask for."""
    max_output: int = Field(20_000, ge=200, le=10_000_000)
    network: str = "none"
    """``none`` (the default), or a network of the engine (``bridge``, ``host``, a name): a power."""
    environment: dict[str, str] = Field(default_factory=dict)
    """The container's whole environment beyond the image's; nothing is taken from the host."""
    privileged: bool = False
    """Give the container the host's devices and kernel powers: a power."""
    mounts: list[str] = Field(default_factory=list)
    """Host directories, ``HOST:CONTAINER`` or ``HOST:CONTAINER:ro``: a power; their files are not versioned."""

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, value: str) -> str:
        value = posixpath.normpath(value)
        if not _SAFE_PATH.fullmatch(value) or value == "/":
            raise ValueError("must be an absolute path below / in the container (letters, digits, . _ + - /)")
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not _USER.fullmatch(value):
            raise ValueError("must be a user name or uid, optionally with :group")
        return value

    @field_validator("network")
    @classmethod
    def _network(cls, value: str) -> str:
        if not _SAFE_NAME.fullmatch(value):
            raise ValueError("must be the name of a network of the engine (none, bridge, host, …)")
        return value

    @field_validator("environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _ENV_NAME.fullmatch(name) or "\0" in text:
                raise ValueError(f"{name!r} is not a variable name, or its value holds a NUL")
        return value

    @model_validator(mode="after")
    def _mounts(self) -> DockerSandboxConfig:
        for mount in self.mounts:
            parts = mount.split(":")
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
                raise ValueError(f"mounts: {mount!r} is not HOST:CONTAINER or HOST:CONTAINER:ro")
            host, target = parts[0], posixpath.normpath(parts[1])
            if not host.startswith("/") or not target.startswith("/"):
                raise ValueError(f"mounts: {mount!r}: both paths must be absolute")
            if _overlaps(target, self.workdir):
                raise ValueError(f"mounts: {mount!r} overlaps the work dir, whose files must stay versioned")
        return self


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


class _Container(BaseModel):
    """The resource's container, as the state file remembers it."""

    id: str
    version: str
    """The version whose files it held when made; only then may a commit take its changes."""
    user: str
    """The user it runs commands as (the config's, else the image's)."""
    owner: tuple[int, int] | None = None
    """uid and gid of its user, once a file was written."""


class DockerState(BaseModel):
    config: DockerSandboxConfig
    version: str | None = None
    """``None`` until the first commit (a fork loads a version instead and never needs the base image)."""
    container: _Container | None = None
    dirty: bool = False
    """A tool that may change files ran since the last commit or load."""


class RunCommandArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(
        min_length=1,
        description="A shell command, run with bash (sh if the image has no bash) in the working directory.",
    )
    timeout: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds before the command is killed (at most the resource's limit).",
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


class DockerSandboxPlugin(Plugin):
    """Resources that are Docker containers, versioned as images."""

    code: ClassVar[CodeRunner | None] = CodeRunner(
        tool="run_command", argument="command", languages=frozenset({"bash", "sh", "shell", "zsh", "console"})
    )
    """Shell blocks run with bash (sh without it); ``zsh`` and ``console`` blocks too, as before."""
    plugin_version: ClassVar[str] = "2"
    config_model: ClassVar[type[BaseModel] | None] = DockerSandboxConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._api: APIClient | None = None

    @property
    def type(self) -> str:
        return TYPE

    @classmethod
    def powers(cls, options: dict[str, Any]) -> list[str]:
        found: list[str] = []
        network = options.get("network", "none")
        if network == "host":
            found.append("the host's network (network: host)")
        elif network != "none":
            found.append(f"network access (network: {network})")
        if options.get("privileged"):
            found.append("the host's devices and kernel (privileged: true)")
        mounts = options.get("mounts") or []
        for mount in mounts if isinstance(mounts, list) else [mounts]:
            found.append(f"host files (mounts: {mount})")
        return found

    # -- lifecycle -----------------------------------------------------------------

    def create_resource(self, config: dict[str, Any]) -> Resource:
        """Check the config and the engine; no container yet (the first commit or tool call makes one)."""
        options = parse_config(DockerSandboxConfig, config, TYPE)
        with self._engine() as api:
            _check_network(api, options.network)
        resource_id = f"{TYPE}-{secrets.token_hex(8)}"
        write_state(self.context.resource_dir(resource_id), DockerState(config=options))
        return Resource(id=resource_id, name=TYPE, type=TYPE, config=options.model_dump(mode="json"))

    def destroy_resource(self, resource_id: str) -> None:
        """Remove every container labelled with the resource (even one its state never recorded)."""
        import docker

        with self._engine() as api:
            for found in api.containers(all=True, filters={"label": f"{LABEL_RESOURCE}={resource_id}"}):
                with contextlib.suppress(docker.errors.NotFound):
                    api.remove_container(found["Id"], force=True, v=True)
        folder = resource_path(self.context.home, resource_id)
        if folder.exists():
            shutil.rmtree(folder)

    def close(self, resource_id: str) -> None:
        """Remove the container if a version holds all it has; else stop it (the next call starts it again)."""
        import docker

        state = self._state(resource_id)
        box = state.container
        if box is None:
            return
        with self._engine() as api, contextlib.suppress(docker.errors.NotFound):
            if state.dirty and box.version == state.version:
                api.stop(box.id, timeout=5)
                return
            api.remove_container(box.id, force=True, v=True)
        self._save(resource_id, state.model_copy(update={"container": None}))

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
            known = ", ".join(_TOOLS)
            raise ToolError(f"the docker_sandbox resource has no tool {tool_name!r}", hint=f"its tools: {known}")
        try:
            args = _TOOLS[tool_name][0].model_validate(kwargs)
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

    def run_code(self, resource_id: str, code: str, *, stdin: bytes | None = None) -> Any:
        return self.run_command(resource_id, code, stdin=stdin)

    def run_command(
        self, resource_id: str, command: str, *, timeout: float | None = None, stdin: bytes | None = None
    ) -> dict[str, Any]:
        state = self._mark_dirty(resource_id)
        limit = state.config.timeout if timeout is None else min(timeout, state.config.timeout)
        seconds = str(max(1, math.ceil(limit)))
        spec = _docker.Exec(
            argv=["sh", "-c", RUN_SCRIPT, "domarkx", command, seconds],
            workdir=state.config.workdir,
            stdin=stdin,
            limit=limit,
            max_output=state.config.max_output,
            stream=True,
        )
        with self._engine(limit + _docker.REQUEST_TIMEOUT) as api:
            _, container = self._live(api, resource_id, state, fresh=True)
            code, stdout, stderr = _docker.run(api, container, spec)
        timed_out = code == TIMED_OUT
        return {"exit_code": None if timed_out else code, "stdout": stdout, "stderr": stderr, "timed_out": timed_out}

    def read_file(self, resource_id: str, path: str) -> str:
        state = self._state(resource_id)
        full = _inside(state.config.workdir, path)
        with self._engine() as api:
            _, container = self._live(api, resource_id, state, fresh=False)
            code, stdout, stderr = _docker.run(api, container, self._script(state, CAT_SCRIPT, full))
        if code != 0:
            raise ToolError(f"cannot read {path}: {stderr.strip() or f'exit code {code}'}")
        return stdout

    def write_file(self, resource_id: str, path: str, content: str) -> str:
        state = self._state(resource_id)
        full = _inside(state.config.workdir, path)
        if full == state.config.workdir.encode():
            raise ToolError(f"{path!r} is the working directory itself, not a file in it")
        state = self._mark_dirty(resource_id)
        data = content.encode("utf-8")
        with self._engine() as api:
            state, container = self._live(api, resource_id, state, fresh=True)
            owner = self._make_parent(api, resource_id, state, posixpath.dirname(full))
            archive = _docker.tar_file(_below(state, full), data, owner=owner)
            _docker.put_archive(api, container, state.config.workdir, archive)
        return f"wrote {len(data)} bytes to {path}"

    def list_dir(self, resource_id: str, path: str = ".") -> str:
        state = self._state(resource_id)
        full = _inside(state.config.workdir, path)
        with self._engine() as api:
            _, container = self._live(api, resource_id, state, fresh=False)
            code, stdout, stderr = _docker.run(api, container, self._script(state, LIST_SCRIPT, full))
        if code != 0:
            raise ToolError(f"cannot list {path}: {stderr.strip() or f'exit code {code}'}")
        return stdout.rstrip("\n") or "(empty directory)"

    # -- live files ----------------------------------------------------------------

    def location(self, resource_id: str) -> str:
        return f"container:{self._state(resource_id).config.workdir}"

    def copy_in(self, resource_id: str, source: Path, path: bytes) -> None:
        state = self._state(resource_id)
        full = _inside(state.config.workdir, path)
        if full == state.config.workdir.encode():
            raise UsageError("copy into a path below the work dir, not onto it")
        if not (source.is_file() or source.is_dir()) or source.is_symlink():
            raise UsageError(f"{paths.escape(os.fsencode(source))} is not a regular file or directory")
        state = self._mark_dirty(resource_id)
        with self._engine() as api, tempfile.TemporaryFile() as archive:
            state, container = self._live(api, resource_id, state, fresh=True)
            owner = self._make_parent(api, resource_id, state, posixpath.dirname(full))
            _docker.tar_tree(source, _below(state, full), archive, owner=owner)
            archive.seek(0)
            _docker.put_archive(api, container, state.config.workdir, archive)

    def copy_out(self, resource_id: str, path: bytes, dest: Path) -> None:
        import docker

        state = self._state(resource_id)
        full = _inside(state.config.workdir, path)
        with self._engine() as api:
            _, container = self._live(api, resource_id, state, fresh=False)
            try:
                with _docker.archive(api, container, full) as (tar, top):
                    _docker_images.extract(tar, top, dest)
            except docker.errors.NotFound as exc:
                raise UsageError(f"no {paths.escape(path)} in the container's work dir") from exc

    # -- versions ------------------------------------------------------------------

    def get_version(self, resource_id: str) -> str:
        state = self._state(resource_id)
        if state.version is None:
            with self._engine() as api:
                state = self._first_version(api, resource_id, state)
        assert state.version is not None
        return state.version

    def commit_version(self, resource_id: str) -> str:
        state = self._state(resource_id)
        with self._engine() as api:
            state = self._first_version(api, resource_id, state)
            if state.dirty:
                made = self._commit_changes(api, state)
                state = state.model_copy(update={"dirty": False, "version": made or state.version})
                self._save(resource_id, state)
        assert state.version is not None
        return state.version

    def load_version(self, resource_id: str, version_id: str) -> None:
        import docker

        state = self._state(resource_id)
        if state.version == version_id and not state.dirty:
            return
        with self._engine() as api:
            image = _docker_images.inspect(api, version_id)
            if image is None:
                raise ReferenceNotFound(
                    f"no image {version_id} on the Docker engine at {_docker.engine_address()}",
                    hint="a docker_sandbox version lives in the engine that committed it (or one it was moved to)",
                )
            _docker_images.tag(api, self._repository(), image["Id"])
            if state.container is not None:
                with contextlib.suppress(docker.errors.NotFound):
                    api.remove_container(state.container.id, force=True, v=True)
        update = {"version": image["Id"], "container": None, "dirty": False}
        self._save(resource_id, state.model_copy(update=update))

    def missing_versions(self, version_ids: Collection[str]) -> set[str]:
        with self._engine() as api:
            present = {image["Id"] for image in api.images(all=True)}
        return {version for version in version_ids if version not in present}

    def collect(self, live: Collection[str]) -> int:
        with self._engine() as api:
            return _docker_images.untag_all_but(api, self._repository(), set(live))

    # -- versions without loading them ---------------------------------------------

    def list_version(self, version_id: str, path: bytes = b"") -> list[Entry]:
        with self._engine() as api, _docker_images.browse(api, version_id, self._labels()) as view:
            return view.list(path)

    def read_version(self, version_id: str, path: bytes) -> bytes:
        with self._engine() as api, _docker_images.browse(api, version_id, self._labels()) as view:
            return view.read(path)

    def diff_versions(self, old: str, new: str) -> ResourceDiff:
        """One archive of each version's work dir, compared file by file (not a walk directory by directory)."""
        if old == new:
            return ResourceDiff()
        with self._engine() as api:
            with _docker_images.browse(api, old, self._labels()) as view:
                before = view.tree()
            with _docker_images.browse(api, new, self._labels()) as view:
                after = view.tree()
        return _docker_images.compare(before, after)

    # -- versions elsewhere --------------------------------------------------------

    def export_versions(self, version_ids: Sequence[str], into: Path, *, have: Collection[str] = ()) -> list[Layer]:
        with self._engine() as api:
            return [_docker_transfer.save(api, sorted(set(version_ids)), into, have=have)]

    def import_versions(self, layers: Sequence[Layer]) -> None:
        with self._engine() as api:
            for layer in layers:
                for version in _docker_transfer.load(api, layer):
                    _docker_images.tag(api, self._repository(), version)

    # -- the container ---------------------------------------------------------------

    def _live(self, api: APIClient, resource_id: str, state: DockerState, *, fresh: bool) -> tuple[DockerState, str]:
        """The resource's running container, made if needed.

        ``fresh``: the caller may change files, so the container must be based on
        the current version (else the next commit would take older changes again);
        one made before the last commit is replaced. Reads use whatever is there.
        """
        state = self._first_version(api, resource_id, state)
        box = state.container
        if box is not None:
            info = _docker_images.inspect_container(api, box.id)
            if info is not None and (not fresh or box.version == state.version):
                if not info["State"]["Running"]:
                    api.start(box.id)
                return state, box.id
            if info is not None:
                api.remove_container(box.id, force=True, v=True)
        assert state.version is not None
        box = self._new_container(api, resource_id, state.version, state.config)
        state = state.model_copy(update={"container": box})
        self._save(resource_id, state)
        return state, box.id

    def _first_version(self, api: APIClient, resource_id: str, state: DockerState) -> DockerState:
        """A new resource's first version: the base image with the work dir made, committed as its own image."""
        if state.version is not None:
            return state
        base = _docker_images.base_image(api, state.config.image)
        box = self._new_container(api, resource_id, base["Id"], state.config)
        try:
            version = self._commit(api, box, state.config.workdir)
            _docker_images.tag(api, self._repository(), version)
        except BaseException:
            with contextlib.suppress(Exception):
                api.remove_container(box.id, force=True, v=True)
            raise
        state = state.model_copy(update={"version": version, "container": box.model_copy(update={"version": version})})
        self._save(resource_id, state)
        return state

    def _new_container(
        self, api: APIClient, resource_id: str, image_id: str, config: DockerSandboxConfig
    ) -> _Container:
        """Create and start a container of ``image_id``; nothing is left behind if that fails."""
        image = api.inspect_image(image_id)
        user = config.user or image["Config"].get("User") or ""
        isolated = config.network == "none"  # no network at all: a namespace with loopback, no engine networking
        host = api.create_host_config(
            network_mode=None if isolated else config.network, privileged=config.privileged, binds=config.mounts or None
        )
        created = api.create_container(
            image_id,
            entrypoint=["sh", "-c"],
            command=[KEEPALIVE],
            working_dir=config.workdir,
            environment=config.environment,
            user=config.user or "",
            labels={LABEL_RESOURCE: resource_id, LABEL_HOME: self._home_key()},
            network_disabled=isolated,
            host_config=host,
        )
        container = str(created["Id"])
        try:
            api.start(container)
            labels = image["Config"].get("Labels") or {}
            if labels.get(LABEL_WORKDIR) != config.workdir or labels.get(LABEL_USER) != user:
                self._set_up(api, container, config.workdir, user)
        except BaseException:
            with contextlib.suppress(Exception):
                api.remove_container(container, force=True, v=True)
            raise
        return _Container(id=container, version=image_id, user=user)

    @staticmethod
    def _set_up(api: APIClient, container: str, workdir: str, user: str) -> None:
        """Give a non-root user its work dir (the engine makes a missing one owned by root)."""
        if user.split(":")[0] in ("", "root", "0"):
            return
        spec = _docker.Exec(argv=["sh", "-c", SETUP_SCRIPT, "domarkx", workdir, user], user="0")
        code, _, stderr = _docker.run(api, container, spec)
        if code != 0:
            raise DomarkxError(f"cannot give user {user} the work dir {workdir}: {stderr.strip() or f'exit {code}'}")

    def _commit_changes(self, api: APIClient, state: DockerState) -> str | None:
        """A new version from what changed since the last one; ``None`` if nothing did.

        ``docker diff`` cannot tell: on overlay2 it misses a file rewritten with the
        same size within the second its old copy was written (docs/plugins.md), so
        the container is committed and the new image's layers compared with the
        version's: the engine adds no layer for an empty change, and the
        container first made for a resource gives the very layer of its version.
        """
        import docker

        box = state.container
        if box is None or box.version != state.version:
            return None  # files change only in a container based on the current version (see _live)
        try:
            image = self._commit(api, box, state.config.workdir)
        except docker.errors.NotFound:
            return None  # the container is gone, and its changes with it
        made = api.inspect_image(image)["RootFS"]["Layers"]
        if made == api.inspect_image(box.version)["RootFS"]["Layers"]:
            api.remove_image(image)
            return None
        if len(made) > SQUASH_AT:
            image = _docker_images.squash(api, box.id, image)
        _docker_images.tag(api, self._repository(), image)
        return image

    @staticmethod
    def _commit(api: APIClient, box: _Container, workdir: str) -> str:
        """``docker commit``, labelled with what a container of the new image needs no setup for."""
        changes = [f'LABEL {LABEL_WORKDIR}="{workdir}" {LABEL_USER}="{box.user}"']  # both checked to need no quoting
        return str(api.commit(box.id, changes=changes)["Id"])

    def _make_parent(self, api: APIClient, resource_id: str, state: DockerState, parent: bytes) -> tuple[int, int]:
        """Make directory ``parent`` as the container's user; return that user's uid and gid."""
        box = state.container
        assert box is not None
        if parent != state.config.workdir.encode():
            code, _, stderr = _docker.run(api, box.id, self._script(state, MKDIR_SCRIPT, parent))
            if code != 0:
                raise ToolError(f"cannot create the directory {paths.escape(parent)}: {stderr.strip()}")
        if box.owner is None:
            code, stdout, _ = _docker.run(api, box.id, self._script(state, OWNER_SCRIPT))
            numbers = stdout.split()
            owner = (int(numbers[0]), int(numbers[1])) if code == 0 and len(numbers) == 2 else (0, 0)
            box = box.model_copy(update={"owner": owner})
            self._save(resource_id, state.model_copy(update={"container": box}))
        assert box.owner is not None
        return box.owner

    @staticmethod
    def _script(state: DockerState, script: str, *args: bytes) -> _docker.Exec:
        argv = ["sh", "-c", script, "domarkx", *(os.fsdecode(a) for a in args)]
        return _docker.Exec(argv=argv, workdir=state.config.workdir, max_output=state.config.max_output)

    # -- state and engine ------------------------------------------------------------

    def _state(self, resource_id: str) -> DockerState:
        return read_state(resource_path(self.context.home, resource_id), DockerState)

    def _save(self, resource_id: str, state: DockerState) -> None:
        write_state(self.context.resource_dir(resource_id), state)

    def _mark_dirty(self, resource_id: str) -> DockerState:
        """Record that the container may change *before* it does, so a crash errs towards a new commit."""
        state = self._state(resource_id)
        if not state.dirty:
            state = state.model_copy(update={"dirty": True})
            self._save(resource_id, state)
        return state

    @contextlib.contextmanager
    def _engine(self, timeout: float = _docker.REQUEST_TIMEOUT) -> Iterator[APIClient]:
        """The engine's client (one per plugin, closed with it), errors translated, requests bounded by ``timeout``."""
        if self._api is None:
            client = _docker.connect()
            self._api = client.api
            weakref.finalize(self, client.close)
        with _docker.translated(timeout, self._api):
            yield self._api

    def _home_key(self) -> str:
        """A random name for this home, made once: its tags and labels on a shared engine."""
        path = self.context.plugin_dir(TYPE) / "home-key"
        try:
            return path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            pass
        key = secrets.token_hex(8)
        with contextlib.suppress(FileExistsError), open(path, "x", encoding="ascii") as fh:
            fh.write(key)
        return path.read_text(encoding="ascii").strip()

    def _repository(self) -> str:
        return f"domarkx/{self._home_key()}"

    def _labels(self) -> dict[str, str]:
        return {LABEL_HOME: self._home_key()}


def _check_network(api: APIClient, network: str) -> None:
    """Refuse a network the engine does not have (an engine without a bridge has no ``bridge``)."""
    if network == "none":
        return
    names = sorted(n["Name"] for n in api.networks())
    if network not in names:
        raise UsageError(
            f"the Docker engine at {_docker.engine_address()} has no network {network!r}",
            hint=f"its networks: {', '.join(names)}; docker_sandbox uses network: none unless told otherwise",
        )


def _below(state: DockerState, full: bytes) -> bytes:
    """A path inside the work dir, relative to it: archives are unpacked at the work dir (see put_archive)."""
    return full[len(state.config.workdir) + 1 :]


def _inside(workdir: str, path: str | bytes) -> bytes:
    """``path`` resolved against ``workdir``; refused if it leaves it.

    A lexical check: it keeps the file tools in the working directory, while the
    container itself is the security boundary (a link there leads to the
    container's own files, never the host's).
    """
    raw = paths.fs(path)
    if b"\0" in raw:
        raise PathEscapeError(f"{paths.escape(raw)!r} holds a NUL byte")
    top = workdir.encode()
    full = posixpath.normpath(posixpath.join(top, raw))
    if full != top and not full.startswith(top + b"/"):
        raise PathEscapeError(f"{paths.escape(raw)!r} is outside the working directory {workdir}")
    return full
