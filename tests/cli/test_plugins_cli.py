"""`domarkx plugins`: the installed resource plugins and their tools."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from pathlib import Path
from typing import Any

import pytest

from domarkx import _entrypoints
from domarkx.errors import DomarkxError

Cli = Callable[..., Any]


def test_lists_builtin_plugins_with_their_tools(cli: Cli) -> None:
    result = cli("plugins")
    assert result.code == 0, result
    assert "local_shell  (domarkx.workspace.plugins.local_shell:LocalShellPlugin)" in result.out
    assert "  - run_command  Run a bash command" in result.out
    assert "sqlite  (domarkx.workspace.plugins.sqlite:SqlitePlugin)" in result.out
    assert "  - query    Run a read-only SQL query" in result.out


def test_json_lists_every_entry_point(cli: Cli) -> None:
    result = cli("plugins", "--json")
    assert result.code == 0, result
    data = json.loads(result.out)
    assert [p["name"] for p in data] == _entrypoints.names(_entrypoints.PLUGINS)
    by_name = {p["name"]: p for p in data}
    assert [t["name"] for t in by_name["local_shell"]["tools"]] == [
        "run_command",
        "read_file",
        "write_file",
        "edit_file",
        "list_dir",
    ]
    assert by_name["sqlite"]["tools"][0]["parameters"]["required"] == ["sql"]
    assert by_name["sqlite"]["description"].startswith("A SQLite database per resource")


def test_a_broken_plugin_is_listed_with_its_error(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    real_load = _entrypoints.load

    def load(group: str, name: str, *, what: str) -> Any:
        if name == "sqlite":
            raise DomarkxError("plugin 'sqlite' failed to load from x: ImportError: gone")
        return real_load(group, name, what=what)

    monkeypatch.setattr(_entrypoints, "load", load)
    result = cli("plugins")
    assert result.code == 0
    assert (
        "sqlite  (domarkx.workspace.plugins.sqlite:SqlitePlugin)\n  not usable here: plugin 'sqlite' failed"
        in result.out
    )
    assert "  - run_command" in result.out


@pytest.fixture
def without_docker_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a machine where domarkx was installed without its ``docker`` extra (fault injection: the SDK is here)."""
    real = _entrypoints.version

    def version(name: str) -> str:
        if name == "docker":
            raise PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(_entrypoints, "version", version)


@pytest.mark.usefixtures("without_docker_sdk")
def test_plugins_says_which_plugins_need_an_extra(cli: Cli) -> None:
    result = cli("plugins")
    assert result.code == 0
    assert (
        "docker_sandbox  (domarkx.workspace.plugins.docker_sandbox:DockerSandboxPlugin [docker])\n"
        "  not usable here: the docker_sandbox plugin needs the 'docker' extra (docker not installed)\n"
        "  hint: pip install 'domarkx[docker]'\n"
    ) in result.out
    by_name = {p["name"]: p for p in json.loads(cli("plugins", "--json").out)}
    assert (by_name["docker_sandbox"]["usable"], by_name["local_shell"]["usable"]) == (False, True)


@pytest.mark.usefixtures("without_docker_sdk")
def test_a_resource_whose_plugin_lacks_its_extra_is_one_line(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "docker.md"
    doc.write_text(
        "```workspace-config\nresources:\n  - type: docker_sandbox\n    image: alpine:3\n```\n\n## user\n\n> hi\n"
    )

    result = cli("run", str(doc), "-q")

    assert result.code == 2
    assert result.err.splitlines() == [
        "error: the docker_sandbox plugin needs the 'docker' extra (docker not installed)",
        "  hint: pip install 'domarkx[docker]'",
    ]


def test_help_teaches_with_an_example(cli: Cli) -> None:
    result = cli("plugins", "--help")
    assert "domarkx plugins --json" in result.out
