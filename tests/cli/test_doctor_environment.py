"""`domarkx doctor` checks this machine too: bubblewrap, the kernel's packages, the Docker engine, the schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domarkx.data.schema import MIGRATIONS
from domarkx.session import environment

Cli = Callable[..., Any]
NOWHERE = "unix:///nonexistent/docker.sock"


def statuses(result: Any) -> dict[str, str]:
    return {e["check"]: e["status"] for e in json.loads(result.out)["environment"]}


def test_the_machine_is_checked_and_docker_only_when_asked(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)

    plain = cli("doctor", "--json")
    assert plain.code == 0, plain
    assert set(statuses(plain)) == {"bubblewrap", "python kernels", "store schema"}  # no instance uses Docker
    assert statuses(plain)["store schema"] == "ok"

    everything = cli("doctor", "--all")
    assert everything.code == 0  # nothing stored needs Docker: a warning, not a problem
    lines = everything.out.splitlines()
    docker = next(i for i, line in enumerate(lines) if line.startswith("warning: docker engine: "))
    assert f"not reachable at {NOWHERE}" in lines[docker]
    assert lines[docker + 1].startswith("  hint: start Docker")
    assert f"version {len(MIGRATIONS)} (this domarkx writes {len(MIGRATIONS)})" in everything.out


def test_bubblewrap_missing_is_a_warning_with_what_to_install(domarkx_home: Path) -> None:
    env = {**os.environ, "DOMARKX_HOME": str(domarkx_home), "PATH": str(Path(sys.executable).parent)}
    beside = Path(sys.executable).parent / "domarkx"

    done = subprocess.run([str(beside), "doctor"], capture_output=True, text=True, env=env, check=False)

    assert done.returncode == 0, done.stderr
    assert "warning: bubblewrap: not installed: commands and Python kernels run unconfined" in done.stdout
    assert "  hint: apt-get install bubblewrap" in done.stdout


def test_an_engine_an_instance_needs_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)

    needed = environment._docker(needed=True)
    spare = environment._docker(needed=False)

    assert (needed.ok, needed.level, spare.level) == (False, "problem", "warning")
    assert needed.hint is not None and "DOCKER_HOST" in needed.hint


def test_missing_kernel_packages_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = environment.importlib.util.find_spec
    monkeypatch.setattr(
        environment.importlib.util, "find_spec", lambda name: None if name == "ipykernel" else real(name)
    )  # fault injection: this machine has the package

    found = environment._kernel(needed=True)

    assert (found.level, found.hint) == ("problem", "pip install 'domarkx[python]'")
    assert found.detail.startswith("ipykernel not importable")
