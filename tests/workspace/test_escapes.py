"""What a model must not reach through local_shell tools, checked through the manager."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from domarkx.data.models import WorkspaceConfig
from domarkx.data.store import Store
from domarkx.workspace.manager import Workspace, WorkspaceManager

SANDBOXES = [
    "none",
    pytest.param("bwrap", marks=pytest.mark.bwrap),
]


@pytest.fixture
def manager() -> Iterator[WorkspaceManager]:
    with Store() as store:
        yield WorkspaceManager(store)


@pytest.fixture(params=SANDBOXES)
def workspace(manager: WorkspaceManager, request: pytest.FixtureRequest) -> Workspace:
    config = WorkspaceConfig.model_validate({"resources": [{"type": "local_shell", "sandbox": request.param}]})
    return manager.create(config)


def refused(manager: WorkspaceManager, ws: Workspace, tool: str, **arguments: str) -> str:
    outcome = manager.call(ws, tool, arguments)
    assert outcome.ok is False, outcome
    assert outcome.text.startswith("error: refused: ")
    return outcome.text


@pytest.mark.parametrize("path", ["../x", "../../../../etc/passwd", "a/../../x", "/etc/passwd", "~/.bashrc"])
@pytest.mark.parametrize("tool", ["read_file", "write_file", "edit_file", "list_dir"])
def test_paths_out_of_the_workspace_are_refused(
    manager: WorkspaceManager, workspace: Workspace, tool: str, path: str
) -> None:
    extra = {"write_file": {"content": "x"}, "edit_file": {"old_text": "a", "new_text": "b"}}.get(tool, {})
    refused(manager, workspace, tool, path=path, **extra)


def test_a_symlink_made_by_a_command_does_not_lead_out(manager: WorkspaceManager, workspace: Workspace) -> None:
    made = manager.call(workspace, "run_command", {"command": "ln -s /etc etc && ln -s /etc/passwd pw"})
    assert made.ok
    assert "outside the workspace" in refused(manager, workspace, "read_file", path="etc/passwd")
    refused(manager, workspace, "read_file", path="pw")
    refused(manager, workspace, "list_dir", path="etc")
    refused(manager, workspace, "write_file", path="etc/evil", content="x")
    refused(manager, workspace, "edit_file", path="pw", old_text="root", new_text="toor")


def test_git_paths_are_refused(manager: WorkspaceManager, workspace: Workspace) -> None:
    for path in [".git/config", "sub/.git/hooks/pre-commit", ".GIT/x"]:
        assert ".git" in refused(manager, workspace, "write_file", path=path, content="x")
    manager.call(workspace, "run_command", {"command": "mkdir real && ln -s real/.git sneaky"})
    refused(manager, workspace, "write_file", path="sneaky/config", content="x")


def test_api_keys_do_not_reach_commands(
    manager: WorkspaceManager, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-must-not-leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    outcome = manager.call(workspace, "run_command", {"command": 'echo "[$OPENAI_API_KEY]"; env'})
    assert outcome.ok
    assert outcome.output["stdout"].startswith("[]\n")
    assert "sk-test-must-not-leak" not in outcome.text
    assert "also-secret" not in outcome.text


def test_home_is_not_the_users_home(manager: WorkspaceManager, workspace: Workspace) -> None:
    outcome = manager.call(workspace, "run_command", {"command": 'echo "$HOME"; ls -A "$HOME" | wc -l'})
    home, entries = outcome.output["stdout"].split()
    assert home != os.path.expanduser("~")
    assert Path(home).resolve() != Path.home().resolve()
    assert entries == "0"
