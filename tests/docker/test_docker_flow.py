"""``docker_sandbox`` through the real ``domarkx`` commands, on a real engine.

A whole session: run → the document's commands → fork before and after a
change → exec → commit → run of the committed snapshot once the base image's
tag is gone → instances rm → prune, after which the engine holds what it held
before. And ``doctor``: a lost version image is reported, a stray resource's
container removed by ``--repair``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from real_engine import Engine

from domarkx.data.store import Store
from domarkx.workspace.manager import WorkspaceManager
from domarkx.workspace.plugin import PluginContext
from domarkx.workspace.plugins import docker_sandbox
from domarkx.workspace.plugins.docker_sandbox import DockerSandboxPlugin

pytestmark = pytest.mark.docker

DOCUMENT = """\
```workspace-config
resources:
  - type: docker_sandbox
    image: "{image}"
    timeout: 30
```

## user

> Write a file.

## assistant

```bash
echo one > a.txt
```

## user

> Change it.

## assistant

```bash
echo two > a.txt && cat /marker.txt > base.txt
```
"""


def test_fork_exec_commit_and_run_without_the_base_image(
    engine: Engine, cli: Any, tmp_path: Path, domarkx_home: Path
) -> None:
    start = engine.state()
    base = engine.derived_image("marker of the base\n")
    try:
        _flow(engine, cli, tmp_path, base)
        assert engine.state() == start, "prune leaves no image and no container behind"
    finally:  # whatever failed, leave the engine as it was for the other tests
        _clean(domarkx_home)
        if base in {tag for image in engine.api.images(name=base.split(":")[0]) for tag in image["RepoTags"]}:
            engine.api.remove_image(base)


def _clean(home: Path) -> None:
    """Remove what the test's home holds on the engine (what a working ``prune`` would leave of it: nothing)."""
    with Store(home) as store:
        plugin = DockerSandboxPlugin(PluginContext(home=home, store=store))
        resources = home / "resources"
        for folder in resources.iterdir() if resources.is_dir() else []:
            plugin.destroy_resource(folder.name)
        plugin.collect(set())


def _flow(engine: Engine, cli: Any, tmp_path: Path, base: str) -> None:
    document = tmp_path / "session.md"
    document.write_text(DOCUMENT.format(image=base))
    assert cli("import", str(document), "-t", "flow").code == 0
    ran = cli("run", "flow", "--name", "first", "-q")
    assert ran.code == 0, ran

    before = cli("fork", "first", "--at", "1", "--name", "before", "-q")
    after = cli("fork", "first", "--at", "3", "--name", "after", "-q")
    assert (before.code, after.code) == (0, 0), (before, after)
    assert cli("exec", "before", "--", "cat a.txt; ls").out == "one\na.txt\n"
    assert cli("exec", "after", "--", "cat a.txt base.txt").out == "two\nmarker of the base\n"
    assert cli("exec", "first", "--", "cat a.txt").out == "two\n", "forks leave their source alone"

    assert cli("exec", "after", "--", "echo three > c.txt").code == 0
    committed = cli("commit", "after", "-t", "flow-done")
    assert committed.code == 0, committed
    for name in ("first", "before", "after"):
        assert cli("instances", "stop", name).code == 0  # their containers go; the base is no one's now
    engine.api.remove_image(base)

    again = cli("run", "flow-done", "--name", "again", "-q")
    assert again.code == 0, again
    assert cli("exec", "again", "--", "cat a.txt c.txt /marker.txt").out == "two\nthree\nmarker of the base\n"
    broken = cli("run", "flow", "--name", "fresh")
    assert broken.code == 1 and "could not be pulled" in broken.err, "a fresh run still needs the base"

    removed = cli("instances", "rm", "-f", "first", "before", "after", "again")
    assert removed.code == 0, removed
    assert cli("snapshots", "rm", "flow-done").code == 0
    pruned = cli("prune")
    assert pruned.code == 0, pruned


SMALL = """\
```workspace-config
resources:
  - type: docker_sandbox
    image: "{image}"
```

## assistant

```bash
echo kept > kept.txt
```
"""


def test_doctor_sees_a_lost_version_and_repair_removes_a_strays_container(
    engine: Engine, cli: Any, tmp_path: Path, domarkx_home: Path
) -> None:
    try:
        _doctor(engine, cli, tmp_path, domarkx_home)
    finally:
        _clean(domarkx_home)


def _doctor(engine: Engine, cli: Any, tmp_path: Path, domarkx_home: Path) -> None:
    document = tmp_path / "small.md"
    document.write_text(SMALL.format(image=engine.image))
    assert cli("run", str(document), "--name", "one", "-q").code == 0
    assert cli("doctor").code == 0
    with Store(domarkx_home) as store:
        workspaces = WorkspaceManager(store)
        [resource] = workspaces.open(store.instances.row(store.instances.resolve("one")).workspace_id).resources
        plugin = workspaces.plugin("docker_sandbox")
        version = plugin.get_version(resource.id)
        stray = plugin.create_resource({"image": engine.image}).id  # a directory no row names, as a crash leaves
        plugin.execute_tool(stray, "run_command", command="true")
    stray_containers = {"label": f"{docker_sandbox.LABEL_RESOURCE}={stray}"}
    assert len(engine.api.containers(all=True, filters=stray_containers)) == 1

    cli("instances", "stop", "one")
    engine.api.remove_image(version, force=True)  # lost behind domarkx's back
    checked = cli("doctor")
    assert checked.code == 1 and f"docker_sandbox version {version} (resource docker_sandbox) is missing" in checked.out
    repaired = cli("doctor", "--repair")
    assert stray in repaired.out
    assert engine.api.containers(all=True, filters=stray_containers) == [], "the stray's container went with it"
    assert cli("instances", "rm", "-f", "one").code == 0
