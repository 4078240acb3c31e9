"""``docker_sandbox`` without an engine: config, powers, the time-out wrapper, and injected engine faults.

The plugin's behaviour on a real engine is tested in ``tests/docker``. Here the
in-process fake (``fake_docker.py``, a real HTTP server the real Docker SDK
talks to) stands in only where a real engine cannot be made to fail on demand.
"""

from __future__ import annotations

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
from domarkx.errors import DomarkxError, PathEscapeError, UsageError
from domarkx.workspace.plugin import PluginContext
from domarkx.workspace.plugins.docker_sandbox import RUN_SCRIPT, DockerSandboxConfig, DockerSandboxPlugin

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
    resource_id = plugin.create_resource({"image": "alpine:3"}).id
    plugin.commit_version(resource_id)
    return resource_id


def call(plugin: DockerSandboxPlugin, resource_id: str, tool: str, **kwargs: Any) -> Any:
    return plugin.execute_tool(resource_id, tool, **kwargs)


def test_registered_and_described() -> None:
    assert _entrypoints.load(_entrypoints.PLUGINS, "docker_sandbox", what="plugin") is DockerSandboxPlugin
    assert [t.name for t in DockerSandboxPlugin.describe_tools()] == [
        "run_command",
        "read_file",
        "write_file",
        "list_dir",
    ]
    assert DockerSandboxPlugin.code is not None and "bash" in DockerSandboxPlugin.code.languages
    assert DockerSandboxPlugin.config_model is DockerSandboxConfig


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({}, "image"),
        ({"image": "a", "workdir": "work"}, "workdir: .*absolute"),
        ({"image": "a", "workdir": "/"}, "workdir: .*below /"),
        ({"image": "a", "workdir": "/w s"}, "workdir"),
        ({"image": "a", "volumes": ["/:/host"]}, "volumes: unknown option"),
        ({"image": "a", "user": "root; rm -rf /"}, "user"),
        ({"image": "a", "network": "container:other"}, "network"),
        ({"image": "a", "environment": {"BAD NAME": "x"}}, "environment"),
        ({"image": "a", "mounts": ["relative:/data"]}, "absolute"),
        ({"image": "a", "mounts": ["/srv:/workspace/data"]}, "overlaps the work dir"),
        ({"image": "a", "mounts": ["/srv:/"]}, "overlaps the work dir"),
        ({"image": "a", "timeout": float("inf")}, "timeout"),
    ],
)
def test_bad_config_is_a_usage_error(plugin: DockerSandboxPlugin, config: dict[str, Any], says: str) -> None:
    with pytest.raises(UsageError, match=says) as caught:
        plugin.create_resource(config)
    assert "\n" not in caught.value.message


def test_powers_name_what_reaches_the_host() -> None:
    assert DockerSandboxPlugin.powers({"image": "a"}) == []
    assert DockerSandboxPlugin.powers({"network": "none"}) == []
    assert DockerSandboxPlugin.powers({"network": "host"}) == ["the host's network (network: host)"]
    assert DockerSandboxPlugin.powers({"network": "bridge"}) == ["network access (network: bridge)"]
    assert DockerSandboxPlugin.powers({"privileged": True, "mounts": ["/a:/b", "/c:/d:ro"]}) == [
        "the host's devices and kernel (privileged: true)",
        "host files (mounts: /a:/b)",
        "host files (mounts: /c:/d:ro)",
    ]


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


def _wrapped(command: str, seconds: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", RUN_SCRIPT, "domarkx", command, seconds],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_run_script_kills_the_whole_group_at_the_time_out() -> None:
    """The time-out wrapper itself, on this machine's ``sh`` (tests/docker runs it in containers)."""
    started = time.monotonic()
    done = _wrapped("sleep 30 | cat; echo never", "1")
    assert (done.returncode, done.stdout) == (124, "")
    assert time.monotonic() - started < 20
    done = _wrapped("(sleep 30; echo late) & echo quick; exit 5", "10")
    assert (done.returncode, done.stdout, done.stderr) == (5, "quick\n", ""), "leftovers are killed"
    assert _wrapped("tr a-z A-Z", "10", stdin="from stdin\n").stdout == "FROM STDIN\n"


# -- faults the fake engine injects ------------------------------------------------------


def test_a_refused_commit_keeps_the_change_for_the_next_one(
    engine: FakeDockerEngine, plugin: DockerSandboxPlugin, resource: str
) -> None:
    first = plugin.get_version(resource)
    call(plugin, resource, "write_file", path="a.txt", content="kept")
    engine.faults["commit"] = 500
    with pytest.raises(DomarkxError, match="injected failure of commit") as caught:
        plugin.commit_version(resource)
    assert "\n" not in caught.value.message
    del engine.faults["commit"]
    second = plugin.commit_version(resource)
    assert second != first
    assert engine.find_image(second).files["/workspace/a.txt"] == b"kept"  # type: ignore[union-attr]


def test_a_dropped_connection_is_one_line(engine: FakeDockerEngine, plugin: DockerSandboxPlugin, resource: str) -> None:
    engine.faults["exec_start"] = "drop"
    with pytest.raises(DomarkxError, match="Docker engine") as caught:
        call(plugin, resource, "run_command", command="echo hi")
    assert "\n" not in caught.value.message
    del engine.faults["exec_start"]
    assert call(plugin, resource, "run_command", command="echo hi")["stdout"] == "hi\n"


def test_a_container_that_cannot_start_is_removed(engine: FakeDockerEngine, plugin: DockerSandboxPlugin) -> None:
    resource_id = plugin.create_resource({"image": "alpine:3"}).id
    engine.faults["container_start"] = 500
    with pytest.raises(DomarkxError, match="injected failure of container_start"):
        plugin.commit_version(resource_id)
    assert engine.containers == {}, "no container is left behind"
    del engine.faults["container_start"]
    plugin.commit_version(resource_id)
    assert len(engine.containers) == 1


def test_the_fake_round_trip(engine: FakeDockerEngine, plugin: DockerSandboxPlugin, resource: str) -> None:
    """The fake speaks enough of the API for a whole round trip (other suites lean on it)."""
    first = plugin.get_version(resource)
    call(plugin, resource, "write_file", path="notes/a.txt", content="one\n")
    call(plugin, resource, "run_command", command="echo two > b.txt")
    second = plugin.commit_version(resource)
    assert second != first and plugin.commit_version(resource) == second
    call(plugin, resource, "run_command", command="true")
    assert plugin.commit_version(resource) == second, "an empty change makes no version"
    plugin.load_version(resource, first)
    assert call(plugin, resource, "list_dir") == "(empty directory)"
    plugin.load_version(resource, second)
    assert call(plugin, resource, "read_file", path="notes/a.txt") == "one\n"
    for bad in ("../etc/passwd", "/etc/passwd", "notes/../../x"):
        with pytest.raises(PathEscapeError, match="outside the working directory"):
            call(plugin, resource, "read_file", path=bad)
    plugin.destroy_resource(resource)
    assert engine.containers == {}
    plugin.collect(set())
    assert plugin.missing_versions([first, second]) == {first, second}
