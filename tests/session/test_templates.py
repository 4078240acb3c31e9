"""The template library: listing survives broken templates, rendering checks its result."""

from __future__ import annotations

from pathlib import Path

import pytest

from domarkx.errors import UsageError
from domarkx.session import templates


@pytest.fixture
def user_dir(domarkx_home: Path) -> Path:
    folder = domarkx_home / "templates"
    folder.mkdir()
    return folder


def test_one_broken_template_does_not_hide_the_others(user_dir: Path) -> None:
    (user_dir / "malformed.md").write_text("## user\n\n> [docs](domarkx://var)\n", encoding="utf-8")
    (user_dir / "latin1.md").write_bytes(b"caf\xe9\n")
    (user_dir / "unquoted.md").write_text(
        "---\ndescription: x\ntitle: [@t](domarkx://var?default=a)\n---\n", encoding="utf-8"
    )
    (user_dir / "not a name!.md").write_text("ignored\n", encoding="utf-8")
    listed = {t.name: t for t in templates.list_templates()}
    assert "not a name!" not in listed
    assert listed["malformed"].description.startswith(f"(broken: {user_dir / 'malformed.md'}:3:3: error: malformed")
    assert listed["latin1"].description.startswith("(unreadable:")
    assert listed["unquoted"].description.startswith("(front matter is not valid YAML as written")
    assert {"chat", "shell-task", "data-analysis"} <= set(listed)


def test_variables_are_listed_in_order_of_first_use(tmp_path: Path) -> None:
    path = tmp_path / "t.md"
    path.write_text(
        "[@d](domarkx://set)[b](2)\n[@a](domarkx://var) [@b](domarkx://var?default=9)"
        " [@x](domarkx://var?name=c&default=3) `[@z](domarkx://var)`\n",
        encoding="utf-8",
    )
    assert templates.find(str(path)).variables == {"b": "2", "a": None, "c": "3"}


def test_render_refuses_a_template_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "t.md"
    path.write_bytes(b"\xff\n")
    with pytest.raises(UsageError, match="is not UTF-8 text"):
        templates.render(templates.find(str(path)), {})


def test_user_dir_follows_domarkx_home(domarkx_home: Path) -> None:
    assert templates.user_dir() == domarkx_home / "templates"
