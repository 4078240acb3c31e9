"""Plugins describe themselves: a third party's plugin joins ``run``, ``exec`` and ``doctor --repair``
without the core naming its tools, its languages, its folders or its id prefix."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from domarkx import _entrypoints
from domarkx.data.store import Store
from domarkx.workspace.manager import WorkspaceManager

DOC = """\
```workspace-config
resources:
  - type: echo
```

## user

> say it

## assistant

```echo-lang
hello there
```
"""


@pytest.fixture(autouse=True)
def echo_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``echo`` registered under ``domarkx.plugins`` beside the built-in plugins, as a package would be."""
    real = importlib.metadata.entry_points
    echo = importlib.metadata.EntryPoint(name="echo", value="echo_plugin:EchoPlugin", group=_entrypoints.PLUGINS)

    def with_echo(**params: str) -> importlib.metadata.EntryPoints:
        found = real(**params)
        return importlib.metadata.EntryPoints([*found, echo]) if params.get("group") == _entrypoints.PLUGINS else found

    _entrypoints._group.cache_clear()
    monkeypatch.setattr(_entrypoints, "entry_points", with_echo)
    yield
    _entrypoints._group.cache_clear()


def run(cli, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    doc = tmp_path / "echo.md"
    doc.write_text(DOC)
    result = cli("run", str(doc), "--name", "echoes")
    assert result.code == 0, result
    return result.out.strip().splitlines()[-1]


def test_offline_run_routes_a_block_by_the_languages_a_plugin_declares(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run(cli, tmp_path)

    exported = cli("export", instance).out
    assert "echo: hello there" in exported
    log = json.loads(cli("log", instance, "--json").out)
    assert log[1]["workspace_version"] is not None


def test_exec_runs_code_in_a_named_resource_or_the_only_one_that_runs_code(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run(cli, tmp_path)

    said = cli("exec", "echoes", "--resource", "echo", "--", "again")
    assert said.code == 0, said
    assert said.out == "echo: again\n"
    only = cli("exec", "echoes", "--", "ls")  # no shell here: CMD is the only code-running resource's code
    assert (only.code, only.out) == (0, "echo: ls\n")


def test_repair_hands_a_stray_directory_to_the_plugin_that_made_it(cli, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    with Store(domarkx_home) as store:
        stray = WorkspaceManager(store).plugin("echo").create_resource({})  # killed before its row: no row names it
    assert not stray.id.startswith("echo")

    result = cli("doctor", "--repair")

    assert result.code == 0, result
    assert (domarkx_home / "echo-destroyed.txt").read_text() == f"{stray.id}\n"
    assert not (domarkx_home / "resources" / stray.id).exists()
