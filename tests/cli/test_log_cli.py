"""``domarkx log``: one line per message, a failed tool result marked ``error:`` once, a message whole."""

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


CODE = """\
## user

> count

## assistant

> Counting:

```bash
printf 'one\\ntwo\\n' | wc -l
```
"""


def test_a_message_whole_and_every_message_whole(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "code.md"
    doc.write_text(CODE)
    assert cli("run", str(doc), "--name", "counted", "-q").code == 0

    one = cli("log", "counted", "1")
    assert one.code == 0, one
    assert one.out.startswith("── message 1 ──\n## assistant\n")
    assert "printf 'one\\ntwo\\n' | wc -l\n" in one.out and "```text output\n2\n```" in one.out
    every = cli("log", "counted", "--full").out
    assert every.index("── message 0 ──") < every.index("> count") < every.index("── message 1 ──")
    assert json.loads(cli("log", "counted", "1", "--json").out)[0]["markdown"] in one.out
    assert json.loads(cli("log", "counted", "--json").out)[1]["content"] == "Counting:"


def test_a_message_out_of_range_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "code.md"
    doc.write_text(CODE)
    assert cli("run", str(doc), "--name", "counted", "-q").code == 0
    result = cli("log", "counted", "5")
    assert result.code == 2 and result.err.startswith("error: message 5 is out of range"), result


def test_a_message_shown_whole_cannot_drive_the_terminal(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "evil.md"
    doc.write_text("## user\n\n> hi\n\n## assistant\n\n> evil \x1b]0;pwned\x07 reply\n")
    assert cli("run", str(doc), "--name", "evil", "-q").code == 0
    out = cli("log", "evil", "1").out
    assert "\x1b" not in out and "\x07" not in out
    assert "> evil \\x1b]0;pwned\\x07 reply\n" in out
