"""``domarkx log``: one line per message, a failed tool result marked ``error:`` once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from domarkx.data.instances import HistoryRow

Cli = Callable[..., Any]

FAILING_CALL = """\
## user

> read it

## assistant

```json tool-call id=call_1 name=read_file
{"path": "missing.txt"}
```

## tool

```text tool-result id=call_1 error
error: read_file: no such file or directory: missing.txt
```
"""


def test_a_failed_tool_call_says_error_once(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "fail.md"
    doc.write_text(FAILING_CALL)
    ran = cli("run", str(doc), "--name", "failing")
    assert ran.code == 1, ran  # the call failed, as the document says it did

    line = cli("log", "failing").out.splitlines()[-1]
    assert line.split()[:2] == ["2", "tool"], line
    assert line.count("error:") == 1 and "error: read_file: no such file" in line, line
    [row] = [r for r in json.loads(cli("log", "failing", "--json").out) if r["role"] == "tool"]
    assert row["summary"] == "error: read_file: no such file or directory: missing.txt"


def test_a_failed_result_without_the_prefix_gets_it() -> None:
    """A plugin's failed result that does not say so itself is still marked."""
    row = HistoryRow(2, "tool", "exit code 1\nboom", [], False, None, None, None)
    assert row.summary() == "error: exit code 1 boom"
    assert row._replace(tool_ok=True).summary() == "exit code 1 boom"
