"""docker_sandbox on a real engine, as ratios to the engine doing the same by hand in the same run.

    eval "$(.ci/docker.sh start)"          # a private engine and the test images
    python bench/bench_docker.py [--size-mb 100] [--repeat 7] [--json]

Each measurement is interleaved with its baselines, ``--repeat`` times after a
warm-up, and reported as medians:

* ``commit``: a resource whose container once wrote ``--size-mb`` MB gets one
  small change (untimed), then ``commit_version`` is timed. Baselines, on the
  same data: ``docker commit`` of a container based on an image that already
  holds the big file, after the same small change (the least a commit can
  cost: target ≤ 1.5×); and ``docker commit`` of a container that wrote the big
  file itself and then made the change (what committing one long-lived
  container costs every time: for information).
* ``fork``: a new resource loads that version and runs ``true`` (what a fork
  costs before its first tool call returns), against ``docker run`` of the
  version image (create, start, wait for ``true``): target ≤ 1.5×. The fork
  alone, before any call (no container yet), for information.
* ``commit, nothing changed``: after a read-only command, for information.

Nothing is left on the engine afterwards. ``DOMARKX_TEST_IMAGE`` names the
image to start from (it needs ``sh``, ``head`` and ``true``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, print_rows, row, timed

from domarkx.data.store import Store
from domarkx.workspace.plugin import PluginContext
from domarkx.workspace.plugins import _docker
from domarkx.workspace.plugins.docker_sandbox import DockerSandboxPlugin

TARGET = 1.5


class Raw:
    """The baselines: the engine driven directly, as ``docker commit`` and ``docker run`` would."""

    def __init__(self, api: Any, image: str, size_mb: int) -> None:
        self.api = api
        self.made: list[str] = []
        self.images: list[str] = []
        write = f"head -c {size_mb}000000 /dev/zero > /big.bin"
        self.fresh = self._running(self._committed(image, write))
        self.long_lived = self._running(image)
        self._exec(self.long_lived, write)

    def _running(self, image: str) -> str:
        container = str(self.api.create_container(image, command=["sleep", "100000"], network_disabled=True)["Id"])
        self.made.append(container)
        self.api.start(container)
        return container

    def _exec(self, container: str, command: str) -> None:
        exec_id = self.api.exec_create(container, ["sh", "-c", command])["Id"]
        self.api.exec_start(exec_id)
        if self.api.exec_inspect(exec_id)["ExitCode"] != 0:
            raise SystemExit(f"the bench's own command failed: {command}")

    def _committed(self, image: str, command: str) -> str:
        container = self._running(image)
        self._exec(container, command)
        self.commit(container)
        return self.images[-1]

    def change(self, step: int) -> None:
        for container in (self.fresh, self.long_lived):
            self._exec(container, f"echo {step} > /small.txt")

    def commit(self, container: str) -> None:
        self.images.append(str(self.api.commit(container)["Id"]))

    def run(self, image: str) -> None:
        """``docker run IMAGE true`` without its client: create, start, wait."""
        container = self.api.create_container(image, command=["true"], network_disabled=True)["Id"]
        self.made.append(container)
        self.api.start(container)
        self.api.wait(container)

    def close(self) -> None:
        for container in self.made:
            with contextlib.suppress(Exception):
                self.api.remove_container(container, force=True)
        for image in reversed(self.images):
            with contextlib.suppress(Exception):
                self.api.remove_image(image, force=True)


@contextlib.contextmanager
def sandbox_plugin() -> Iterator[DockerSandboxPlugin]:
    """The plugin on a home of its own; its resources and versions are gone afterwards."""
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "home") as store:
        plugin = DockerSandboxPlugin(PluginContext(home=store.home, store=store))
        try:
            yield plugin
        finally:
            resources = store.home / "resources"
            for folder in resources.iterdir() if resources.is_dir() else []:
                plugin.destroy_resource(folder.name)
            plugin.collect(set())


def measure(image: str, size_mb: int, repeat: int) -> dict[str, float]:
    """Medians of each figure and its baselines."""
    client = _docker.connect()
    raw = Raw(client.api, image, size_mb)
    try:
        with sandbox_plugin() as plugin:
            config = {"image": image, "timeout": 120}
            resource = plugin.create_resource(config).id
            plugin.run_command(resource, f"head -c {size_mb}000000 /dev/zero > big.bin")
            plugin.commit_version(resource)
            steps = iter(range(1_000_000))

            def ours() -> None:
                step = next(steps)
                plugin.run_command(resource, f"echo {step} > small.txt")
                raw.change(step)

            commits = _interleaved_after(
                ours,
                {
                    "commit": lambda: plugin.commit_version(resource),
                    "docker commit, small change": lambda: raw.commit(raw.fresh),
                    "docker commit, long-lived container": lambda: raw.commit(raw.long_lived),
                },
                repeat,
            )
            version = plugin.commit_version(resource)
            forks = interleaved(
                {
                    "fork": lambda: _fork(plugin, config, version, first_command=True),
                    "docker run": lambda: raw.run(version),
                    "fork, no command": lambda: _fork(plugin, config, version, first_command=False),
                },
                repeat,
            )
            unchanged = _interleaved_after(
                lambda: plugin.run_command(resource, "ls -l > /dev/null"),
                {"commit, nothing changed": lambda: plugin.commit_version(resource)},
                repeat,
            )
    finally:
        raw.close()
        client.close()
    return {name: statistics.median(values) for name, values in {**commits, **forks, **unchanged}.items()}


def _interleaved_after(
    prepare: Callable[[], None], actions: dict[str, Callable[[], object]], repeat: int
) -> dict[str, list[float]]:
    """Like :func:`interleaved`, with an untimed ``prepare`` before each round."""
    prepare()
    for action in actions.values():
        action()
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeat):
        prepare()
        for name, action in actions.items():
            times[name].append(timed(action))
    return times


def _fork(plugin: DockerSandboxPlugin, config: dict[str, Any], version: str, *, first_command: bool) -> None:
    forked = plugin.create_resource(config).id
    plugin.load_version(forked, version)
    if first_command:
        plugin.run_command(forked, "true")


def figures(quick: bool = False, image: str | None = None) -> dict[str, Any]:
    image = image or os.environ.get("DOMARKX_TEST_IMAGE")
    if not image:  # run.py reports it and goes on with the other benches
        raise RuntimeError('no Docker engine: eval "$(.ci/docker.sh start)" first (it sets DOMARKX_TEST_IMAGE)')
    size_mb, repeat = (20, 3) if quick else (100, 7)
    medians = measure(image, size_mb, repeat)
    return {"area": "docker_sandbox (real engine)", "rows": _rows(medians, size_mb), "details": medians}


def _rows(medians: dict[str, float], size_mb: int) -> list[dict[str, Any]]:
    return [
        row(
            f"docker_sandbox commit, 1 small change after {size_mb} MB",
            medians["commit"],
            baseline="docker commit of a small change",
            baseline_s=medians["docker commit, small change"],
            max_ratio=TARGET,
        ),
        row(
            f"docker_sandbox commit, 1 small change after {size_mb} MB",
            medians["commit"],
            baseline=f"docker commit of a container that wrote {size_mb} MB",
            baseline_s=medians["docker commit, long-lived container"],
        ),
        row(
            "docker_sandbox fork (to the first command's end)",
            medians["fork"],
            baseline="docker run of the version image",
            baseline_s=medians["docker run"],
            max_ratio=TARGET,
        ),
        row("docker_sandbox fork alone (its container comes with the first call)", medians["fork, no command"]),
        row("docker_sandbox commit after a read-only command", medians["commit, nothing changed"]),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100, help="the big write, in MB (default 100)")
    parser.add_argument("--repeat", type=int, default=7, help="runs of each measurement (default 7)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    image = os.environ.get("DOMARKX_TEST_IMAGE")
    if not image:
        parser.error('set DOMARKX_TEST_IMAGE (eval "$(.ci/docker.sh start)" does)')
    medians = measure(image, args.size_mb, args.repeat)
    rows = _rows(medians, args.size_mb)
    if args.json:
        print(json.dumps({"bench": "docker", "size_mb": args.size_mb, "repeat": args.repeat, "rows": rows}))
    else:
        print_rows(f"docker_sandbox, {args.size_mb} MB written once, {args.repeat} runs, medians", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
