"""Setup-script tools: run at instance creation, turned into specs a model can call."""

from __future__ import annotations

from pathlib import Path

import pytest

from domarkx.errors import DocumentError, UsageError
from domarkx.tools import schema
from domarkx.tools.setup_script import load_setup_tools
from domarkx.workspace.plugin import ToolError

SCRIPT = '''
from pathlib import Path

def note(text: str, times: int = 1) -> str:
    """Append a note to notes.txt in the workspace."""
    with open("notes.txt", "a") as fh:
        fh.write(text * times + "\\n")
    return f"noted {len(text) * times} characters"

Path("setup-ran.txt").write_text("yes")
tools = [note]
'''


def test_plain_functions_become_specs_and_calls(tmp_path: Path) -> None:
    tools = load_setup_tools(SCRIPT, workdir=tmp_path)
    assert (tmp_path / "setup-ran.txt").read_text() == "yes", "the script runs in the workspace directory"
    [tool] = tools
    assert tool.spec.name == "note"
    assert tool.spec.description == "Append a note to notes.txt in the workspace."
    assert tool.spec.parameters["required"] == ["text"]
    assert tool.spec.parameters["properties"]["times"]["type"] == "integer"
    assert tool.spec.parameters["additionalProperties"] is False
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert tool.call(text="ab", times=2) == "noted 4 characters"
    assert (tmp_path / "notes.txt").read_text() == "abab\n"
    with pytest.raises(ToolError, match="bad arguments for note: times"):
        tool.call(text="x", times="many")
    with pytest.raises(ToolError, match="bad arguments for note: colour"):
        tool.call(text="x", colour="red")


def test_errors_point_into_the_document(tmp_path: Path) -> None:
    with pytest.raises(DocumentError) as syntax:
        load_setup_tools("x = 1\ndef broken(:\n", workdir=tmp_path, path="doc.md", line=10)
    assert syntax.value.format().startswith("doc.md:11:")
    with pytest.raises(DocumentError) as failure:
        load_setup_tools("a = 1\nb = 2\n1 / 0\n", workdir=tmp_path, path="doc.md", line=20)
    assert failure.value.format() == "doc.md:22:1: error: setup-script failed: ZeroDivisionError: division by zero"
    with pytest.raises(DocumentError, match="setup-script failed: SystemExit"):
        load_setup_tools("import sys\nsys.exit(3)", workdir=tmp_path)
    with pytest.raises(DocumentError, match="`tools` must be a list"):
        load_setup_tools("tools = 'nope'", workdir=tmp_path)
    with pytest.raises(DocumentError, match="holds int"):
        load_setup_tools("tools = [1]", workdir=tmp_path)
    assert load_setup_tools("x = 1", workdir=tmp_path) == []


def test_signatures_a_model_cannot_call_are_refused() -> None:
    def variadic(*names: str) -> None: ...

    with pytest.raises(UsageError, match="cannot be passed by keyword"):
        schema.args_model(variadic)
