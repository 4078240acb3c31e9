"""Fixtures for the tests that need a real Docker engine (``.ci/docker.sh start`` makes one).

The engine is the one ``DOCKER_HOST`` names; the images are the ones the script
builds offline (``DOMARKX_TEST_IMAGE``: busybox as root, ``DOMARKX_TEST_IMAGE_NONROOT``:
the same with ``USER app``). Without them a test skips and says why, except in
CI (``CI`` set), where it fails: CI must run these tests, not skip them.

Every test is checked for leaks: the engine's containers and images are listed
before and after, and must be the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from real_engine import Engine

from domarkx.data.store import Store
from domarkx.errors import DomarkxError
from domarkx.workspace.plugin import PluginContext
from domarkx.workspace.plugins import _docker
from domarkx.workspace.plugins.docker_sandbox import DockerSandboxPlugin

START_HINT = 'start one with: eval "$(.ci/docker.sh start)"'


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI needs a Docker engine for this test: {reason}; {START_HINT}", pytrace=False)
    pytest.skip(f"no Docker engine for this test: {reason} ({START_HINT})")


@pytest.fixture(scope="session")
def engine_session() -> Iterator[Engine]:
    image = os.environ.get("DOMARKX_TEST_IMAGE")
    nonroot = os.environ.get("DOMARKX_TEST_IMAGE_NONROOT")
    if not image or not nonroot or not os.environ.get("DOCKER_HOST"):
        _unavailable("DOCKER_HOST, DOMARKX_TEST_IMAGE and DOMARKX_TEST_IMAGE_NONROOT are not all set")
    assert image is not None and nonroot is not None
    try:
        client = _docker.connect()
    except DomarkxError as exc:
        _unavailable(exc.message)
    try:
        for name in (image, nonroot):
            client.api.inspect_image(name)
    except Exception as exc:
        client.close()
        _unavailable(f"the engine lacks the test images: {exc}")
    yield Engine(client.api, image, nonroot)
    client.close()


@pytest.fixture
def engine(engine_session: Engine) -> Iterator[Engine]:
    """The engine, checked to hold the same containers and images after the test as before."""
    before = engine_session.state()
    yield engine_session
    after = engine_session.state()
    assert after[0] == before[0], f"containers left behind: {after[0] - before[0]}"
    assert after[1] == before[1], f"images left behind or lost: {after[1] ^ before[1]}"


@pytest.fixture
def plugin(engine: Engine, domarkx_home: Path) -> Iterator[DockerSandboxPlugin]:
    """The plugin on this test's home; its resources are destroyed and its versions collected afterwards."""
    yield from _plugin_at(domarkx_home)


def _plugin_at(home: Path) -> Iterator[DockerSandboxPlugin]:
    store = Store(home)
    plugin = DockerSandboxPlugin(PluginContext(home=home, store=store))
    try:
        yield plugin
    finally:
        resources = home / "resources"
        for folder in sorted(resources.iterdir()) if resources.is_dir() else []:
            plugin.destroy_resource(folder.name)
        plugin.collect(set())
        store.close()


@pytest.fixture
def other_plugin(engine: Engine, tmp_path: Path) -> Iterator[DockerSandboxPlugin]:
    """A second home's plugin on the same engine."""
    yield from _plugin_at(tmp_path / "other-home")
