"""Fuzzing the workspace-config loader: the parser, ``config_for`` and each plugin's own validation.

A ``workspace-config`` block (or a ``session-config`` ``"engine"``) drawn near
valid goes through every step that turns it into resources: the parser, the
workspace manager's naming and shorthand rules, and each plugin's config
model — for ``local_shell``, ``sqlite`` and ``python`` by really creating the
workspace. Only a :class:`DocumentError` (with a line inside the document) or a
:class:`UsageError` may come out; anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Iterator

import fuzz_budget
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import resource_item, session_config, workspace_config

from domarkx.data.models import WorkspaceConfig
from domarkx.data.store import Store
from domarkx.errors import DocumentError, UsageError
from domarkx.parsing.markdown import MarkdownParser, line_offsets
from domarkx.workspace.manager import WorkspaceManager
from domarkx.workspace.plugins._state import parse_config
from domarkx.workspace.plugins.docker_sandbox import DockerSandboxConfig

PATH = "ws.md"
PARSER = MarkdownParser()
CREATABLE = {"local_shell", "sqlite", "python"}
"""Plugins whose resources the test creates for real (``docker_sandbox`` needs an engine)."""


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkspaceManager]:
    with Store(tmp_path_factory.mktemp("fuzz-ws-store")) as store:
        yield WorkspaceManager(store)


def budget(base: int) -> settings:
    return settings(
        max_examples=fuzz_budget.examples(base),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def load(workspaces: WorkspaceManager, config: WorkspaceConfig) -> str:
    """Validate ``config`` as ``create`` would; create it when every plugin can run here. Returns the outcome."""
    types = {item.type for item in config.resources}
    if types <= CREATABLE:
        workspaces.destroy(workspaces.create(config))
        return "created"
    for item in config.resources:
        plugin = workspaces.plugin(item.type)  # unknown types are refused here
        if item.type == "docker_sandbox":
            parse_config(DockerSandboxConfig, item.options, item.type)
        else:
            assert plugin.type in CREATABLE
    return "validated"


@budget(150)
@given(
    block=workspace_config(),
    session=st.one_of(st.just([]), session_config()),
    first=st.booleans(),
)
def test_workspace_config_loads_or_is_refused_as_usage(
    workspaces: WorkspaceManager, block: list[str], session: list[str], first: bool
) -> None:
    pieces = [block, session] if first else [session, block]
    text = "".join(f"{line}\n" for piece in pieces for line in [*piece, ""]) + "## user\n\nhi\n"
    try:
        snapshot = PARSER.parse(text, path=PATH)
    except DocumentError as err:
        check_one_line(err, lines=len(line_offsets(text)))
        fuzz_budget.ran("workspace-config", "rejected by the parser")
        return
    try:
        outcome = load(workspaces, workspaces.config_for(snapshot))
    except UsageError as err:
        check_one_line(err)
        fuzz_budget.ran("workspace-config", "refused by the manager or a plugin")
        return
    fuzz_budget.ran("workspace-config", outcome)


def check_one_line(err: UsageError, *, lines: int | None = None) -> None:
    """A refusal is one line with a message; a document's points at one of its lines."""
    assert err.message and "\n" not in err.format(), err.format()
    if lines is not None:
        assert isinstance(err, DocumentError) and 1 <= err.line <= lines, err.format()


@budget(150)
@given(items=st.lists(resource_item(), min_size=1, max_size=3))
def test_resource_items_validate_or_are_refused_as_usage(workspaces: WorkspaceManager, items: list[object]) -> None:
    """The models directly, past the parser: what an embedder building a WorkspaceConfig would hit."""
    from pydantic import ValidationError

    try:
        config = WorkspaceConfig.model_validate({"resources": items})
    except ValidationError:
        fuzz_budget.ran("resource items", "refused by the model")
        return
    try:
        outcome = load(workspaces, config)
    except UsageError:
        fuzz_budget.ran("resource items", "refused by the manager or a plugin")
        return
    fuzz_budget.ran("resource items", outcome)
