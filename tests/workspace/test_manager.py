"""WorkspaceManager: configs, tool routing and naming, outcomes, aggregated versions, clone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domarkx import ids
from domarkx.data.models import SessionSnapshot, WorkspaceConfig
from domarkx.data.store import Store
from domarkx.errors import ReferenceNotFound, UsageError
from domarkx.workspace.manager import Workspace, WorkspaceManager, render
from domarkx.workspace.plugins.local_shell import LocalShellPlugin
from domarkx.workspace.plugins.sqlite import SqlitePlugin

OPENAI_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@pytest.fixture
def store() -> Iterator[Store]:
    with Store() as opened:
        yield opened


@pytest.fixture
def manager(store: Store) -> WorkspaceManager:
    return WorkspaceManager(store)


def config(*resources: dict[str, Any]) -> WorkspaceConfig:
    return WorkspaceConfig.model_validate({"resources": list(resources)})


SHELL_AND_DB = config({"type": "local_shell", "sandbox": "none"}, {"type": "sqlite", "name": "db"})


def work_dir(manager: WorkspaceManager, workspace: Workspace, name: str = "local_shell") -> Path:
    resource = next(r for r in workspace.resources if r.name == name)
    plugin = manager.plugin("local_shell")
    assert isinstance(plugin, LocalShellPlugin)
    return plugin.work_dir(resource.id)


# -- configuration ---------------------------------------------------------------------


def snapshot(**fields: Any) -> SessionSnapshot:
    return SessionSnapshot(document="", **fields)


def test_a_document_without_config_gets_a_local_shell(manager: WorkspaceManager) -> None:
    assert manager.config_for(snapshot()).model_dump(exclude_none=True) == {"resources": [{"type": "local_shell"}]}


def test_engine_is_shorthand_for_one_resource(manager: WorkspaceManager) -> None:
    found = manager.config_for(snapshot(session_config={"engine": "sqlite", "timeout": 5, "model": "gpt-x"}))
    assert found.model_dump(exclude_none=True) == {"resources": [{"type": "sqlite", "timeout": 5}]}


def test_workspace_config_wins_over_engine(manager: WorkspaceManager) -> None:
    found = manager.config_for(snapshot(session_config={"engine": "sqlite"}, workspace_config=SHELL_AND_DB))
    assert found == SHELL_AND_DB


def test_unknown_engine_is_a_usage_error_at_create(manager: WorkspaceManager) -> None:
    with pytest.raises(UsageError, match="unknown plugin 'quantum'") as caught:
        manager.create(manager.config_for(snapshot(session_config={"engine": "quantum"})))
    assert "local_shell" in (caught.value.hint or "")


def test_a_typo_in_plugin_options_names_the_key(manager: WorkspaceManager, store: Store) -> None:
    with pytest.raises(UsageError, match="timout: unknown option"):
        manager.create(config({"type": "sqlite"}, {"type": "local_shell", "timout": 3}))
    # the sqlite resource made before the failure is gone again
    assert not list((store.home / "resources").iterdir())
    assert store.db.execute("SELECT count(*) FROM workspaces").fetchone()[0] == 0


def test_resource_names_default_to_the_type_and_are_deduplicated(manager: WorkspaceManager) -> None:
    ws = manager.create(config({"type": "sqlite"}, {"type": "sqlite"}, {"type": "sqlite", "name": "sqlite_2x"}))
    assert [r.name for r in ws.resources] == ["sqlite", "sqlite_2", "sqlite_2x"]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ([{"type": "sqlite", "name": "db"}, {"type": "sqlite", "name": "db"}], "two resources are named 'db'"),
        ([{"type": "sqlite", "name": "my db"}], "invalid resource name"),
        ([], "lists no resources"),
    ],
)
def test_bad_resource_lists_are_usage_errors(
    manager: WorkspaceManager, resources: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        manager.create(config(*resources))


# -- tools -------------------------------------------------------------------------------


def test_one_resource_keeps_plain_tool_names(manager: WorkspaceManager) -> None:
    ws = manager.create(config({"type": "local_shell", "sandbox": "none"}))
    names = [t.name for t in manager.tools(ws)]
    assert names == ["run_command", "read_file", "write_file", "edit_file", "list_dir"]


def test_several_resources_prefix_tool_names(manager: WorkspaceManager) -> None:
    ws = manager.create(SHELL_AND_DB)
    names = [t.name for t in manager.tools(ws)]
    assert "local_shell__run_command" in names
    assert "db__query" in names
    assert all(OPENAI_TOOL_NAME.match(n) for n in names)
    assert len(set(names)) == len(names)


def test_calls_are_routed_to_their_resource(manager: WorkspaceManager) -> None:
    ws = manager.create(SHELL_AND_DB)
    wrote = manager.call(ws, "local_shell__write_file", {"path": "a.txt", "content": "hi"})
    assert (wrote.ok, wrote.resource, wrote.text) == (True, "local_shell", "wrote 2 bytes to a.txt")
    made = manager.call(ws, "db__execute", {"sql": "CREATE TABLE t(x); INSERT INTO t VALUES (42);"})
    assert made.ok
    queried = manager.call(ws, "db__query", {"sql": "SELECT x FROM t"})
    assert queried.output == {"columns": ["x"], "rows": [[42]], "truncated": False}
    assert queried.text == "x\n--\n42\n(1 row)\n"
    assert (work_dir(manager, ws) / "a.txt").read_text() == "hi"


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("nope", {}, "no tool named 'nope'; available: run_command"),
        ("read_file", {}, "missing required argument(s): path"),
        ("read_file", {"path": "a", "encoding": "x"}, "unknown argument(s): encoding"),
        ("run_command", {"command": 42}, "argument 'command' must be of type string"),
        ("run_command", {"command": "true", "timeout": True}, "'timeout' must be of type number"),
        ("read_file", {"path": "missing.txt"}, "no such file or directory: missing.txt"),
        ("read_file", {"path": "../../x"}, "refused: '../../x' is outside the workspace"),
    ],
)
def test_failures_become_outcomes_not_exceptions(
    manager: WorkspaceManager, tool: str, arguments: dict[str, Any], message: str
) -> None:
    ws = manager.create(config({"type": "local_shell", "sandbox": "none"}))
    outcome = manager.call(ws, tool, arguments)
    assert outcome.ok is False
    assert outcome.text.startswith("error: ")
    assert message in outcome.text


def test_a_plugin_crash_is_an_outcome(manager: WorkspaceManager, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = manager.create(config({"type": "local_shell", "sandbox": "none"}))

    def boom(self: LocalShellPlugin, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(LocalShellPlugin, "execute_tool", boom)
    outcome = manager.call(ws, "list_dir", {})
    assert outcome.ok is False
    assert outcome.text == "error: internal error in local_shell: RuntimeError: disk on fire"


def test_command_results_read_like_a_terminal() -> None:
    assert render({"exit_code": 0, "stdout": "hi\n", "stderr": "", "timed_out": False}) == "hi\n"
    assert render({"exit_code": 2, "stdout": "", "stderr": "bad\n", "timed_out": False}) == (
        "[stderr]\nbad\n[exit code 2]\n"
    )
    assert render({"exit_code": None, "stdout": "part", "stderr": "", "timed_out": True}) == (
        "part\n[timed out: the command was killed]\n"
    )
    assert render({"exit_code": 0, "stdout": "", "stderr": "", "timed_out": False}) == "[no output, exit code 0]\n"
    assert render(["a", 1]) == '["a", 1]'


# -- versions ------------------------------------------------------------------------------


def test_create_commits_an_initial_version(manager: WorkspaceManager) -> None:
    ws = manager.create(SHELL_AND_DB)
    version = manager.current_version(ws)
    assert set(version.versions) == {"local_shell", "db"}
    assert version.id == ids.digest_json(version.versions)
    assert manager.has_version(version.id)


def test_commit_is_idempotent_and_tracks_changes(manager: WorkspaceManager) -> None:
    ws = manager.create(SHELL_AND_DB)
    initial = manager.current_version(ws)
    assert manager.commit(ws) == initial
    manager.call(ws, "db__query", {"sql": "SELECT 1"})
    assert manager.commit(ws) == initial
    manager.call(ws, "db__execute", {"sql": "CREATE TABLE t(x)"})
    changed = manager.commit(ws)
    assert changed.id != initial.id
    assert changed.versions["local_shell"] == initial.versions["local_shell"]
    assert manager.current_version(ws) == changed


def test_only_touched_resources_are_committed(manager: WorkspaceManager, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = manager.create(SHELL_AND_DB)
    committed: list[str] = []
    original = SqlitePlugin.commit_version

    def spy(self: SqlitePlugin, resource_id: str) -> str:
        committed.append(resource_id)
        return original(self, resource_id)

    monkeypatch.setattr(SqlitePlugin, "commit_version", spy)
    manager.call(ws, "local_shell__write_file", {"path": "x", "content": "y"})
    manager.commit(ws)
    assert committed == []
    manager.call(ws, "db__query", {"sql": "SELECT 1"})
    manager.commit(ws)
    assert committed == [ws.resources[1].id]


def test_load_restores_every_resource(manager: WorkspaceManager) -> None:
    ws = manager.create(SHELL_AND_DB)
    manager.call(ws, "local_shell__write_file", {"path": "notes.txt", "content": "v1"})
    manager.call(ws, "db__execute", {"sql": "CREATE TABLE t(x); INSERT INTO t VALUES ('v1');"})
    first = manager.commit(ws)
    manager.call(ws, "local_shell__run_command", {"command": "echo v2 > notes.txt; touch extra"})
    manager.call(ws, "db__execute", {"sql": "UPDATE t SET x = 'v2'"})
    second = manager.commit(ws)

    manager.load(ws, first.id)
    assert manager.current_version(ws) == first
    assert sorted(p.name for p in work_dir(manager, ws).iterdir()) == ["notes.txt"]
    assert (work_dir(manager, ws) / "notes.txt").read_text() == "v1"
    assert manager.call(ws, "db__query", {"sql": "SELECT x FROM t"}).output["rows"] == [["v1"]]
    assert manager.commit(ws) == first
    manager.load(ws, second.id)
    assert manager.call(ws, "db__query", {"sql": "SELECT x FROM t"}).output["rows"] == [["v2"]]


def test_clone_starts_a_new_workspace_at_a_version(manager: WorkspaceManager) -> None:
    ws = manager.create(SHELL_AND_DB)
    manager.call(ws, "local_shell__write_file", {"path": "f", "content": "shared"})
    version = manager.commit(ws)
    manager.call(ws, "local_shell__write_file", {"path": "f", "content": "moved on"})
    manager.commit(ws)

    fork = manager.clone(ws, version.id)
    assert fork.id != ws.id
    assert [r.name for r in fork.resources] == ["local_shell", "db"]
    assert {r.id for r in fork.resources}.isdisjoint(r.id for r in ws.resources)
    assert manager.current_version(fork) == version
    assert (work_dir(manager, fork) / "f").read_text() == "shared"
    assert (work_dir(manager, ws) / "f").read_text() == "moved on"


def test_a_version_outlives_its_workspace(manager: WorkspaceManager, store: Store) -> None:
    ws = manager.create(config({"type": "local_shell", "sandbox": "none"}))
    manager.call(ws, "write_file", {"path": "f", "content": "kept"})
    version = manager.commit(ws)
    manager.destroy(ws)
    with pytest.raises(ReferenceNotFound):
        manager.open(ws.id)
    assert not work_dir(manager, ws).exists()
    assert store.db.execute("SELECT count(*) FROM resources").fetchone()[0] == 0
    fork = manager.clone(config({"type": "local_shell", "sandbox": "none"}), version.id)
    assert (work_dir(manager, fork) / "f").read_text() == "kept"


def test_a_version_loads_only_into_matching_resources(manager: WorkspaceManager) -> None:
    shell_only = manager.create(config({"type": "local_shell", "sandbox": "none"}))
    both = manager.create(SHELL_AND_DB)
    with pytest.raises(UsageError, match=r"has resources db \(sqlite\), local_shell") as caught:
        manager.load(shell_only, manager.current_version(both).id)
    assert caught.value.hint == "a version loads only into a workspace made from the same config"
    with pytest.raises(ReferenceNotFound, match="no workspace version"):
        manager.load(both, ids.digest_bytes(b"nothing"))
    with pytest.raises(ReferenceNotFound):
        manager.clone(both, ids.digest_bytes(b"nothing"))


def test_a_new_process_reopens_the_workspace(manager: WorkspaceManager) -> None:
    ws = manager.create(SHELL_AND_DB)
    before = manager.current_version(ws)
    manager.call(ws, "local_shell__write_file", {"path": "f", "content": "1"})
    with Store() as other_store:
        other = WorkspaceManager(other_store)
        reopened = other.open(ws.id)
        assert reopened == ws
        assert other.call(reopened, "local_shell__read_file", {"path": "f"}).text == "1"
        version = other.commit(reopened)  # the touch recorded by the first manager is honoured
    assert version.versions["local_shell"] != before.versions["local_shell"]
    assert version.versions["db"] == before.versions["db"]
    assert manager.current_version(ws) == version
    manager.close(ws)
