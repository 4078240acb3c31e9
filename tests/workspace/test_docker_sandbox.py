"""The ``docker_sandbox`` plugin against a fake Engine API, and against a real engine when there is one.

The fake (``fake_docker.py``) is a real HTTP server spoken to by the real
Docker SDK through ``DOCKER_HOST``, so the plugin's requests, the SDK's
parsing and the exec stream framing are all exercised.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_docker import FakeDockerEngine

from domarkx import _entrypoints
from domarkx.data.store import Store
from domarkx.errors import DomarkxError, ReferenceNotFound, UsageError
from domarkx.workspace.plugin import PluginContext, ToolError
from domarkx.workspace.plugins.docker_sandbox import RUN_SCRIPT, DockerSandboxPlugin, docker_client

BASE_FILES: dict[str, bytes | None] = {"/": None, "/bin": None, "/bin/sh": b"\x7fELF", "/etc": None}


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDockerEngine]:
    with FakeDockerEngine({"alpine:3": BASE_FILES}) as fake:
        monkeypatch.setenv("DOCKER_HOST", fake.url)
        yield fake


@pytest.fixture
def plugin(domarkx_home: Path) -> Iterator[DockerSandboxPlugin]:
    store = Store(domarkx_home)
    yield DockerSandboxPlugin(PluginContext(home=domarkx_home, store=store))
    store.close()


@pytest.fixture
def resource(engine: FakeDockerEngine, plugin: DockerSandboxPlugin) -> str:
    return plugin.create_resource({"image": "alpine:3"}).id


def call(plugin: DockerSandboxPlugin, resource_id: str, tool: str, **kwargs: Any) -> Any:
    return plugin.execute_tool(resource_id, tool, **kwargs)


def test_registered_under_its_entry_point() -> None:
    assert _entrypoints.load(_entrypoints.PLUGINS, "docker_sandbox", what="plugin") is DockerSandboxPlugin
    names = [t.name for t in DockerSandboxPlugin.describe_tools()]
    assert names == ["run_command", "read_file", "write_file", "list_dir"]


def test_commit_then_load_brings_the_files_back(
    engine: FakeDockerEngine, plugin: DockerSandboxPlugin, resource: str
) -> None:
    base = plugin.get_version(resource)
    assert base == engine.find_image("alpine:3").id  # type: ignore[union-attr]
    call(plugin, resource, "write_file", path="notes/a.txt", content="first\n")
    call(plugin, resource, "run_command", command="echo made > b.txt")
    first = plugin.commit_version(resource)
    assert first != base
    assert plugin.commit_version(resource) == first, "nothing ran since: the same version"
    assert call(plugin, resource, "read_file", path="notes/a.txt") == "first\n"

    call(plugin, resource, "run_command", command="rm b.txt && echo other > c.txt")
    call(plugin, resource, "write_file", path="notes/a.txt", content="second\n")
    second = plugin.commit_version(resource)
    assert call(plugin, resource, "list_dir") == "c.txt\nnotes/"

    plugin.load_version(resource, first)
    assert plugin.get_version(resource) == first
    assert call(plugin, resource, "list_dir") == "b.txt\nnotes/"
    assert call(plugin, resource, "read_file", path="notes/a.txt") == "first\n"
    assert plugin.commit_version(resource) == first

    plugin.load_version(resource, second)
    assert call(plugin, resource, "read_file", path="notes/a.txt") == "second\n"
    assert len(engine.containers) == 1, "loading replaces the container instead of adding one"


def test_a_version_loads_into_another_resource(
    engine: FakeDockerEngine, plugin: DockerSandboxPlugin, resource: str
) -> None:
    call(plugin, resource, "write_file", path="shared.txt", content="from the first")
    version = plugin.commit_version(resource)
    other = plugin.create_resource({"image": "alpine:3"}).id
    plugin.load_version(other, version)
    assert call(plugin, other, "read_file", path="shared.txt") == "from the first"


def test_run_command_output_exit_code_and_environment(
    engine: FakeDockerEngine, plugin: DockerSandboxPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    resource = plugin.create_resource({"image": "alpine:3", "environment": {"GREETING": "hi"}}).id
    result = call(
        plugin, resource, "run_command", command='echo "[$OPENAI_API_KEY] $GREETING"; pwd; echo oops >&2; exit 3'
    )
    assert result == {"exit_code": 3, "stdout": "[] hi\n/workspace\n", "stderr": "oops\n", "timed_out": False}
    created = next(body for method, path, body in engine.requests if path == "/containers/create")
    assert created["Env"] == ["GREETING=hi"]
    assert created["HostConfig"]["NetworkMode"] == "none"
    assert "Binds" not in created["HostConfig"] and "Mounts" not in created["HostConfig"]


def test_time_out_is_reported(engine: FakeDockerEngine, plugin: DockerSandboxPlugin, resource: str) -> None:
    result = call(plugin, resource, "run_command", command="sleep 600", timeout=2)
    assert result["timed_out"] is True
    assert result["exit_code"] is None
    exec_body = [body for method, path, body in engine.requests if path.endswith("/exec")][-1]
    assert exec_body["Cmd"][-2:] == ["sleep 600", "2"], "the time-out travels to the container"


def test_paths_outside_the_working_directory_are_refused(plugin: DockerSandboxPlugin, resource: str) -> None:
    for bad in ("../etc/passwd", "/etc/passwd", "notes/../../x"):
        with pytest.raises(ToolError, match="outside the working directory"):
            call(plugin, resource, "read_file", path=bad)
    with pytest.raises(ToolError, match="outside"):
        call(plugin, resource, "write_file", path="../escape", content="x")
    with pytest.raises(ToolError, match=r"cannot read missing\.txt"):
        call(plugin, resource, "read_file", path="missing.txt")


def test_close_stops_the_container_and_the_next_call_starts_it(
    engine: FakeDockerEngine, plugin: DockerSandboxPlugin, resource: str
) -> None:
    plugin.close(resource)
    assert not any(c.running for c in engine.containers.values())
    assert call(plugin, resource, "run_command", command="echo back")["stdout"] == "back\n"


def test_a_container_removed_behind_our_back_comes_back_at_the_last_version(
    engine: FakeDockerEngine, plugin: DockerSandboxPlugin, resource: str
) -> None:
    call(plugin, resource, "write_file", path="kept.txt", content="committed")
    plugin.commit_version(resource)
    call(plugin, resource, "write_file", path="lost.txt", content="not committed")
    engine.containers.clear()
    assert call(plugin, resource, "list_dir") == "kept.txt"


def test_destroy_removes_container_and_state(
    engine: FakeDockerEngine, plugin: DockerSandboxPlugin, resource: str, domarkx_home: Path
) -> None:
    call(plugin, resource, "write_file", path="f", content="x")
    version = plugin.commit_version(resource)
    plugin.destroy_resource(resource)
    assert engine.containers == {}
    assert not (domarkx_home / "resources" / resource).exists()
    assert engine.find_image(version) is not None, "versions outlive the resource"


def test_missing_image_is_pulled_or_reported(engine: FakeDockerEngine, plugin: DockerSandboxPlugin) -> None:
    engine.pullable["busybox:latest"] = BASE_FILES
    assert plugin.create_resource({"image": "busybox"}).id
    with pytest.raises(DomarkxError, match="'nothing:1' is not on the Docker engine and could not be pulled"):
        plugin.create_resource({"image": "nothing:1"})
    with pytest.raises(ReferenceNotFound, match="no image sha256:"):
        plugin.load_version(plugin.create_resource({"image": "alpine:3"}).id, "sha256:" + "f" * 64)


def test_bad_config_is_a_usage_error(plugin: DockerSandboxPlugin) -> None:
    with pytest.raises(UsageError, match="image"):
        plugin.create_resource({})
    with pytest.raises(UsageError, match=r"workdir: .*absolute"):
        plugin.create_resource({"image": "alpine:3", "workdir": "work"})
    with pytest.raises(UsageError, match=r"volumes: unknown option"):
        plugin.create_resource({"image": "alpine:3", "volumes": ["/:/host"]})


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("host", ["tcp", "unix"])
def test_unreachable_engine_names_docker_host(
    plugin: DockerSandboxPlugin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host: str
) -> None:
    address = f"tcp://127.0.0.1:{_closed_port()}" if host == "tcp" else f"unix://{tmp_path}/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", address)
    with pytest.raises(DomarkxError, match=f"cannot reach a Docker engine at {address}") as caught:
        plugin.create_resource({"image": "alpine:3"})
    assert caught.value.hint is not None and "DOCKER_HOST" in caught.value.hint


def test_run_script_kills_the_whole_group_at_the_time_out() -> None:
    """The time-out wrapper itself, on this machine's ``sh``: the fake cannot run shell scripts."""
    started = time.monotonic()
    done = subprocess.run(
        ["sh", "-c", RUN_SCRIPT, "domarkx", "sleep 30 | cat; echo never", "1"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert (done.returncode, done.stdout) == (124, "")
    assert time.monotonic() - started < 20
    done = subprocess.run(
        ["sh", "-c", RUN_SCRIPT, "domarkx", "(sleep 30; echo late) & echo quick; exit 5", "10"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (5, "quick\n", ""), "leftovers are killed"


# -- a real engine ---------------------------------------------------------------------


@pytest.fixture
def real_engine() -> str:
    """The image to test with on a reachable engine; skips (with the reason) when there is none."""
    import docker

    image = os.environ.get("DOMARKX_TEST_DOCKER_IMAGE", "alpine:3")
    try:
        with docker_client() as client:
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                client.images.pull(image)
    except DomarkxError as exc:
        pytest.skip(f"no Docker engine (or image {image}) for the real-engine test: {exc.message}")
    return image


@pytest.mark.docker
def test_round_trip_on_a_real_engine(
    real_engine: str, plugin: DockerSandboxPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    resource = plugin.create_resource({"image": real_engine, "timeout": 20}).id
    try:
        assert call(plugin, resource, "run_command", command='echo "[$OPENAI_API_KEY]"')["stdout"] == "[]\n"
        call(plugin, resource, "write_file", path="a.txt", content="one")
        first = plugin.commit_version(resource)
        assert plugin.commit_version(resource) == first
        call(plugin, resource, "run_command", command="echo two > a.txt && touch b.txt")
        timed = call(plugin, resource, "run_command", command="sleep 30 | cat", timeout=1)
        assert timed["timed_out"] is True
        plugin.load_version(resource, first)
        assert call(plugin, resource, "read_file", path="a.txt") == "one"
        assert call(plugin, resource, "list_dir") == "a.txt"
    finally:
        plugin.destroy_resource(resource)
