"""docker_sandbox sessions travel: their versions reach the registry as ordinary images, and come back.

Needs a Docker engine (``eval "$(.ci/docker.sh start)"`` starts a private one and
sets ``DOCKER_HOST`` and ``DOMARKX_TEST_IMAGE``). The engine reaches the test
registry on 127.0.0.1 over plain HTTP (Docker allows that for loopback).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from registry_service import Registry
from transfer_helpers import Homes

DOC = """\
---
title: docker travels
---

```workspace-config
resources:
  - type: docker_sandbox
    image: "{image}"
```

## user

> start

## assistant

```bash
echo one > a.txt && mkdir -p d && echo deep > d/b.txt
```

## user

> more

## assistant

```bash
echo two >> a.txt && rm d/b.txt
```
"""


@pytest.fixture
def engine_image() -> str:
    from test_real_plugins import _exports

    if not _exports("docker_sandbox"):
        pytest.skip("docker_sandbox does not export versions yet (docker lane)")
    image, host = os.environ.get("DOMARKX_TEST_IMAGE"), os.environ.get("DOCKER_HOST")
    if not image or not host or shutil.which("docker") is None:
        reason = "no Docker engine (DOCKER_HOST, DOMARKX_TEST_IMAGE; `.ci/docker.sh start`) or docker CLI"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return image


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def states(cli, instance: str) -> list[str]:  # type: ignore[no-untyped-def]
    found = []
    for at in range(len(json.loads(cli("log", instance, "--json").out))):
        fork = cli("fork", instance, "--at", str(at), "-q").out.strip()
        found.append(cli("exec", fork, "--", "find . -type f | sort | xargs cat").out)
        assert cli("instances", "rm", "-f", fork).code == 0
    return found


def test_docker_versions_become_images_and_come_back(  # type: ignore[no-untyped-def]
    cli, homes: Homes, make_session, plain_registry: Registry, engine_image: str
) -> None:
    homes.use("a")
    instance = make_session(DOC.format(image=engine_image), name="boxed")
    expected = states(cli, instance)
    assert expected[-1] == "one\ntwo\n"
    target = f"{plain_registry.host}/team/docker:v1"
    report = json.loads(cli("push", "boxed", target, "--insecure", "--json").out)
    manifest = json.loads(plain_registry.blob_file(report["digest"]).read_bytes())
    images = [d["digest"] for d in manifest["layers"] if d["mediaType"].endswith("image-layout.manifest.v1+json")]
    assert images
    image_ids = set(docker("images", "-q", "--no-trunc", "--filter", "reference=domarkx/*").split())
    pulled_by_docker = docker("pull", f"{target.rsplit(':', 1)[0]}@{images[-1]}")  # an ordinary image
    assert images[-1] in pulled_by_docker
    assert docker("image", "inspect", "-f", "{{.Id}}", f"{target.rsplit(':', 1)[0]}@{images[-1]}").strip() in image_ids

    assert cli("instances", "rm", "-f", "boxed").code == 0  # and its containers
    forget(image_ids)
    assert not image_ids & set(docker("images", "-q", "--no-trunc", "-a").split())  # the engine lost them

    homes.use("b")
    assert cli("pull", target, "--insecure").out.strip() == instance
    assert image_ids <= set(docker("images", "-q", "--no-trunc", "-a").split())  # the pull brought them back
    assert states(cli, instance) == expected
    assert cli("instances", "rm", "-f", instance).code == 0
    forget(image_ids)


def forget(images: set[str]) -> None:
    """Take these images (and any container made from them) out of the engine, as if it never had them."""
    for image in images:
        for container in docker("ps", "-aq", "--filter", f"ancestor={image}").split():
            subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    for _ in images:  # a version is the parent of the next: children go first
        for image in images:
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=False)
