"""A python setup-script declares tools the model can call (seed 002 §5.1)."""

from __future__ import annotations

import json
from pathlib import Path

from fake_openai import FakeOpenAI, calls, text

DOC = '''\
```session-config
{"model": "openai:fake-model"}
```

```python setup-script
from pathlib import Path

def shout(word: str) -> str:
    """Upper-case a word and remember it in the workspace."""
    Path("shouted.txt").write_text(word.upper())
    return word.upper() + "!"

tools = [shout]
```

## user

> hi
'''


def test_setup_script_tools_reach_the_model_and_run_in_the_workspace(
    cli, tmp_path: Path, openai_env: FakeOpenAI
) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    # import never runs the script
    snapshot = cli("import", str(doc)).out.strip()
    assert not list(tmp_path.glob("shouted.txt"))
    openai_env.queue(calls(("shout", {"word": "hello"})), text("Done."))
    instance = cli("run", snapshot, "-q", "-m", "shout hello").out.strip()
    offered = {t["function"]["name"] for t in openai_env.requests[0].body["tools"]}
    assert "shout" in offered and "run_command" in offered
    log = json.loads(cli("log", instance, "--json").out)
    assert log[-2]["role"] == "tool" and log[-2]["summary"] == "HELLO!"
    assert cli("exec", instance, "--", "cat shouted.txt").out == "HELLO"


def test_a_failing_setup_script_is_a_document_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text("```python setup-script\nraise RuntimeError('nope')\n```\n\n## user\n\n> hi\n")
    result = cli("run", str(doc))
    assert result.code == 2
    errors = [line for line in result.err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and errors[0].startswith(f"{doc}:2:")
    assert json.loads(cli("instances", "ls", "--json").out) == []
