"""`domarkx new` and macros through `domarkx import`, via the real entry point."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domarkx.session.templates import SHIPPED_DIR

Cli = Callable[..., Any]
SHIPPED = sorted(p.stem for p in SHIPPED_DIR.glob("*.md"))


def test_at_least_three_templates_ship() -> None:
    assert {"chat", "shell-task", "data-analysis"} <= set(SHIPPED)


def test_list_shows_each_template_with_its_description_and_variables(cli: Cli) -> None:
    result = cli("new", "--list")
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "VARIABLES", "DESCRIPTION"]
    assert [line.split()[0] for line in lines[1:]] == SHIPPED
    chat = next(line for line in lines if line.startswith("chat "))
    assert "title, system, question" in chat and "A plain conversation" in chat


def test_list_json(cli: Cli) -> None:
    result = cli("new", "--list", "--json")
    assert result.code == 0, result
    listed = {t["name"]: t for t in json.loads(result.out)}
    assert sorted(listed) == SHIPPED
    for entry in listed.values():
        assert entry["source"] == "shipped"
        assert entry["description"] and not entry["description"].startswith("(")
        assert entry["variables"] and all(v is not None for v in entry["variables"].values())
    assert listed["shell-task"]["variables"]["command"] == "ls -la"


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_template_renders_and_imports(cli: Cli, tmp_path: Path, name: str) -> None:
    out = tmp_path / f"{name}.md"
    result = cli("new", name, "-o", str(out))
    assert result.code == 0, result
    assert f"wrote {out} from template {name}" in result.err
    text = out.read_text(encoding="utf-8")
    assert "domarkx://" not in text
    assert text.startswith("---\n")
    imported = cli("import", str(out), "--json")
    assert imported.code == 0, imported
    assert json.loads(imported.out)["messages"] >= 2


def test_set_fills_template_variables(cli: Cli, tmp_path: Path) -> None:
    result = cli(
        "new", "shell-task", "--set", "task=Count the files", "--set", "command=find . | wc -l", "--set", "timeout=5"
    )
    assert result.code == 0, result
    assert "> Count the files\n" in result.out
    assert "```bash\nfind . | wc -l\n```\n" in result.out
    assert "```workspace-config macros\n" in result.out
    assert "    timeout: 5\n" in result.out


def test_render_json_carries_the_document(cli: Cli) -> None:
    result = cli("new", "chat", "--set", "title=Hi", "--json")
    assert result.code == 0, result
    data = json.loads(result.out)
    assert (data["template"], data["source"], data["output"]) == ("chat", "shipped", None)
    assert data["document"].startswith('---\ntitle: "Hi"\n')


def test_unknown_template_lists_the_known_ones(cli: Cli) -> None:
    result = cli("new", "nope")
    assert result.code == 2
    assert result.err.splitlines()[0] == "error: unknown template 'nope'"
    assert f"known templates: {', '.join(SHIPPED)}" in result.err


def test_new_needs_a_template_or_list(cli: Cli) -> None:
    assert cli("new").code == 2
    assert cli("new", "chat", "--list").code == 2


def test_an_unknown_variable_is_refused(cli: Cli) -> None:
    result = cli("new", "chat", "--set", "titel=Oops")
    assert result.code == 2
    assert "has no variable 'titel'" in result.err
    assert cli("new", "chat", "--set", "novalue").code == 2


def test_output_is_not_overwritten_without_force(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "mine.md"
    out.write_text("precious\n", encoding="utf-8")
    result = cli("new", "chat", "-o", str(out))
    assert result.code == 2
    assert "already exists" in result.err and "--force" in result.err
    assert out.read_text(encoding="utf-8") == "precious\n"
    assert cli("new", "chat", "-o", str(out), "--force").code == 0
    assert out.read_text(encoding="utf-8").startswith('---\ntitle: "New chat"')


USER_TEMPLATE = """\
[@defaults](domarkx://set)[owner](nobody)
---
description: Team standup notes
---

## user

> Standup for [@owner](domarkx://var), goal: [@goal](domarkx://var)
"""


def test_user_templates_shadow_shipped_ones(cli: Cli, domarkx_home: Path) -> None:
    folder = domarkx_home / "templates"
    folder.mkdir()
    (folder / "chat.md").write_text(USER_TEMPLATE, encoding="utf-8")
    (folder / "standup.md").write_text(USER_TEMPLATE, encoding="utf-8")
    listed = {t["name"]: t for t in json.loads(cli("new", "--list", "--json").out)}
    assert listed["chat"]["source"] == "user"
    assert listed["standup"] == {
        "name": "standup",
        "source": "user",
        "path": str(folder / "standup.md"),
        "description": "Team standup notes",
        "variables": {"owner": "nobody", "goal": None},
    }
    assert "goal (required)" in cli("new", "--list").out
    result = cli("new", "chat", "--set", "goal=ship it")
    assert result.code == 0, result
    assert result.out == "---\ndescription: Team standup notes\n---\n\n## user\n\n> Standup for nobody, goal: ship it\n"


def test_a_required_variable_left_out_is_reported_at_its_place(cli: Cli, domarkx_home: Path) -> None:
    (domarkx_home / "templates").mkdir()
    path = domarkx_home / "templates" / "standup.md"
    path.write_text(USER_TEMPLATE, encoding="utf-8")
    result = cli("new", "standup")
    assert result.code == 2
    assert result.err.splitlines()[0] == f"{path}:8:46: error: var: variable 'goal' is not set"
    assert "--set goal=VALUE" in result.err


def test_a_template_may_be_given_as_a_path(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "mine.md"
    path.write_text(USER_TEMPLATE, encoding="utf-8")
    result = cli("new", str(path), "--set", "owner=Ada", "--set", "goal=x")
    assert result.code == 0, result
    assert "Standup for Ada, goal: x" in result.out
    assert cli("new", str(tmp_path / "missing.md")).code == 2


def test_a_template_that_renders_to_a_broken_document_is_refused(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "broken.md"
    path.write_text("## user\n\n[@fence](domarkx://var?default=%60%60%60)\n", encoding="utf-8")
    out = tmp_path / "out.md"
    result = cli("new", str(path), "-o", str(out))
    assert result.code == 2
    assert result.err.startswith(f"{path} (rendered):3:1: error: code fence ``` opened here is never closed")
    assert "fix the template" in result.err
    assert not out.exists()


# --------------------------------------------------------------------------- macros via import


def test_import_set_fills_a_variable(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("## user\n\n> Deploy [@k](domarkx://var) today\n", encoding="utf-8")
    imported = cli("import", str(doc), "--set", "k=v", "-q")
    assert imported.code == 0, imported
    exported = cli("export", imported.out.strip())
    assert exported.out == "## user\n\n> Deploy v today\n"
    again = cli("import", str(doc), "--set", "k=v", "-q")
    assert again.out == imported.out
    assert cli("import", str(doc), "--set", "k=w", "-q").out != imported.out


def test_import_reports_an_unknown_macro_with_its_position(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("## user\n\n> Hi [@x](domarkx://nope)\n", encoding="utf-8")
    result = cli("import", str(doc))
    assert result.code == 2
    assert result.err.splitlines() == [
        f"{doc}:3:6: error: unknown macro 'nope'",
        "  hint: known macros: include, set, var",
    ]


def test_import_confines_include_unless_allowed(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("from outside\n", encoding="utf-8")
    (tmp_path / "doc").mkdir()
    doc = tmp_path / "doc" / "doc.md"
    doc.write_text("## user\n\n> [@o](domarkx://include?path=../outside.txt)\n", encoding="utf-8")
    refused = cli("import", str(doc))
    assert refused.code == 2
    assert "'../outside.txt' is outside the document's directory" in refused.err
    assert "--allow-outside" in refused.err
    allowed = cli("import", str(doc), "--allow-outside", "-q")
    assert allowed.code == 0, allowed
    assert cli("export", allowed.out.strip()).out == "## user\n\n> from outside\n"
