"""Fuzzing the import-time configuration checks (:mod:`domarkx.session.config`).

Near-valid ``session-config`` and ``workspace-config`` blocks go through the
parser with the import hook. Two properties:

* a refusal is one :class:`DocumentError` line pointing inside the document;
* what the import accepts, the workspace accepts too: its resources get unique,
  valid names and every option passes its plugin's ``config_model``; the
  session-config passes the engine's. Caught at import, never later.
"""

from __future__ import annotations

import fuzz_budget
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from strategies import session_config, workspace_config

from domarkx import _entrypoints
from domarkx.errors import DocumentError
from domarkx.parsing.markdown import MarkdownParser, line_offsets
from domarkx.session.config import check
from domarkx.workspace.manager import DEFAULT_ENGINE, ENGINE_OPTIONS, resource_names

PARSER = MarkdownParser()


@settings(
    max_examples=fuzz_budget.examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(block=workspace_config(), session=st.one_of(st.just([]), session_config()), first=st.booleans())
def test_what_import_accepts_the_workspace_accepts(block: list[str], session: list[str], first: bool) -> None:
    pieces = [block, session] if first else [session, block]
    text = "".join(f"{line}\n" for piece in pieces for line in [*piece, ""]) + "## user\n\nhi\n"
    try:
        snapshot = PARSER.parse(text, path="doc.md", check=check)
    except DocumentError as err:
        at_a_line(err, len(line_offsets(text)))
        fuzz_budget.ran("import checks", "refused at a line")
        return
    if snapshot.workspace_config is not None:
        resource_names(snapshot.workspace_config)
        items = [(item.type, item.options) for item in snapshot.workspace_config.resources]
    else:
        settings_ = snapshot.session_config
        items = [
            (settings_.get("engine") or DEFAULT_ENGINE, {k: settings_[k] for k in ENGINE_OPTIONS if k in settings_})
        ]
    for plugin_type, options in items:
        model = _entrypoints.load(_entrypoints.PLUGINS, plugin_type, what="plugin").config_model
        assert isinstance(model, type) and issubclass(model, BaseModel)
        model.model_validate(options)  # raises if import let through what the plugin refuses
    fuzz_budget.ran("import checks", "accepted, and the plugins agree")


def at_a_line(err: DocumentError, lines: int) -> None:
    """A refusal is one line pointing at one of the document's lines."""
    assert "\n" not in err.format() and 1 <= err.line <= lines, err.format()
