"""The offline path end to end: run a document's assistant code blocks, log, export, re-import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello.md"

DOC = """\
---
title: offline
---

## user

> make two files

## assistant

```bash
echo one > a.txt
```

## user

> and another

## assistant

```bash
echo two > b.txt
cat a.txt b.txt
```
"""


def run_doc(cli, tmp_path: Path, text: str = DOC) -> str:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    result = cli("run", str(doc), "-q")
    assert result.code == 0, result
    return result.out.strip().splitlines()[-1]


def test_shipped_example_runs_offline(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", str(EXAMPLE))
    assert result.code == 0, result
    assert "3 project/README.md" in result.out
    instance = result.out.strip().splitlines()[-1]
    log = json.loads(cli("log", instance, "--json").out)
    assert [e["role"] for e in log] == ["system", "user", "assistant", "user", "assistant"]
    assert all(e["workspace_version"] for e in log if e["role"] == "assistant")


def test_each_assistant_message_links_the_version_after_its_blocks(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path)
    log = json.loads(cli("log", instance, "--json").out)
    assert set(log[0]) == {"index", "role", "summary", "content", "workspace_version"}
    first, second = log[1]["workspace_version"], log[3]["workspace_version"]
    assert first and second and first != second
    assert log[0]["workspace_version"] is None
    # fork at the first assistant message: only a.txt exists there
    fork = cli("fork", instance, "--at", "1", "-q").out.strip()
    listing = cli("exec", fork, "--", "ls").out.split()
    assert listing == ["a.txt"]
    assert cli("exec", instance, "--", "ls").out.split() == ["a.txt", "b.txt"]


def test_export_reimport_export_is_byte_identical(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path)
    exported = cli("export", instance).out
    assert "```text output\none\ntwo\n```" in exported
    assert "domarkx-format: 1" in exported
    again = tmp_path / "again.md"
    again.write_text(exported)
    snapshot = cli("import", str(again)).out.strip().splitlines()[-1]
    assert cli("export", snapshot).out == exported
    # running the export reproduces the same workspace versions and outputs
    rerun = run_doc(cli, tmp_path, exported)
    assert cli("export", rerun).out == exported


def test_commit_then_run_starts_from_the_committed_workspace(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path)
    cli("exec", instance, "--", "echo extra > c.txt")
    committed = cli("commit", instance, "-t", "after-exec").out.strip()
    assert committed.startswith("sha256:")
    info = json.loads(cli("snapshots", "inspect", "after-exec", "--json").out)
    assert info["manifest"]["workspace_state"]["workspace_version"]
    restored = cli("run", "after-exec", "-q").out.strip()
    assert cli("exec", restored, "--", "ls").out.split() == ["a.txt", "b.txt", "c.txt"]


def test_instances_lifecycle(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    named = cli("run", str(doc), "--name", "demo", "-q")
    assert named.code == 0
    rows = json.loads(cli("instances", "ls", "--json").out)
    assert [r["name"] for r in rows] == ["demo"]
    assert rows[0]["messages"] == 4
    assert cli("run", str(doc), "--name", "demo").code == 2  # names are unique
    assert cli("instances", "stop", "demo").code == 0
    stopped = cli("exec", "demo", "--", "ls")
    assert stopped.code == 2 and "stopped" in stopped.err
    assert cli("instances", "rm", "demo").code == 0
    assert json.loads(cli("instances", "ls", "--json").out) == []


def test_snapshot_in_use_is_kept(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path)
    snapshot = json.loads(cli("instances", "inspect", instance, "--json").out)["snapshot_id"]
    refused = cli("snapshots", "rm", snapshot)
    assert refused.code == 2 and "used by 1 instance" in refused.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("fork", "nope", "--at", "0"), "no instance"),
        (("log", "zzzz"), "no instance"),
        (("export", "nothing-here"), "no instance or snapshot"),
    ],
)
def test_bad_references_are_one_line_errors(cli, args: tuple[str, ...], needle: str) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args)
    assert result.code == 2
    assert result.err.startswith("error: ") and needle in result.err
    assert "Traceback" not in result.err


def test_fork_out_of_range(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path)
    result = cli("fork", instance, "--at", "99")
    assert result.code == 2 and "out of range" in result.err
