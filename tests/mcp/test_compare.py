"""workspace.compare: the one workspace diff (``domarkx diff``, the MCP ``diff`` tool, verify)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from testplugins import Notebook, Opaque, registered

from domarkx.data.models import ResourceConfig, WorkspaceConfig
from domarkx.data.store import Store
from domarkx.workspace.compare import compare, render
from domarkx.workspace.manager import WorkspaceManager


@pytest.fixture
def workspaces(domarkx_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkspaceManager]:
    with (
        registered(monkeypatch, "notebook", Notebook),
        registered(monkeypatch, "opaque", Opaque),
        Store(domarkx_home) as store,
    ):
        yield WorkspaceManager(store)


def config(*types: str) -> WorkspaceConfig:
    return WorkspaceConfig(resources=[ResourceConfig(type=t) for t in types])


def test_changed_resources_are_diffed_by_their_plugin(workspaces: WorkspaceManager) -> None:
    workspace = workspaces.create(config("notebook", "opaque"))
    start = workspaces.current_version(workspace).id
    workspaces.call(workspace, "notebook__put", {"path": "a.txt", "text": "one\n"})
    middle = workspaces.commit(workspace).id
    workspaces.call(workspace, "notebook__put", {"path": "a.txt", "text": "one\ntwo\n"})
    workspaces.call(workspace, "opaque__put", {"path": "x", "text": "y"})
    end = workspaces.commit(workspace).id

    first = compare(workspaces, start, middle)
    assert [(c.name, c.changed) for c in first] == [("notebook", True), ("opaque", False)]
    assert [(c.name, c.status, c.added) for c in first[0].diff.changes] == [("a.txt", "added", 1)]

    second = compare(workspaces, middle, end)
    assert second[1].diff.notes == ["opaque versions cannot be browsed"]
    text = render(second)
    assert "== notebook (notebook)" in text and " modified a.txt  +1 -0" in text and "+two\n" in text
    assert "== opaque (opaque)" in text and "note: opaque versions cannot be browsed" in text
    assert "+two" not in render(second, patches=False)


def test_no_change_and_a_capped_rendering(workspaces: WorkspaceManager) -> None:
    workspace = workspaces.create(config("notebook"))
    start = workspaces.current_version(workspace).id
    assert render(compare(workspaces, start, start)) == "no changes\n"
    workspaces.call(workspace, "put", {"path": "big.txt", "text": "line\n" * 5000})
    end = workspaces.commit(workspace).id
    capped = render(compare(workspaces, start, end), limit=500)
    assert capped.startswith("== notebook") and capped.endswith("more characters of the diff left out]\n")
    assert len(capped) < 600


def test_versions_of_other_workspaces_say_which_resources_came_and_went(workspaces: WorkspaceManager) -> None:
    one = workspaces.create(config("notebook"))
    two = workspaces.create(WorkspaceConfig(resources=[ResourceConfig(type="opaque", name="other")]))
    found = compare(workspaces, workspaces.current_version(one).id, workspaces.current_version(two).id)
    assert [(c.name, c.diff.changes[0].status) for c in found] == [("notebook", "removed"), ("other", "added")]
