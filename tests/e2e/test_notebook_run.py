"""``domarkx run`` as a notebook runner: failures stop it and exit 1 with a summary, --keep-going, --resume,
each block's output under its header, recorded tool results checked against a re-run (issue 10 item 10)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAILING = """\
## user

> go

## assistant

```bash
echo one > a.txt
echo first
```

## assistant

```bash
echo two > b.txt
exit 3
```

```bash
echo three > c.txt
```

## assistant

```bash
echo four > d.txt
```
"""


def write(tmp_path: Path, text: str, name: str = "doc.md") -> Path:
    doc = tmp_path / name
    doc.write_text(text)
    return doc


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def files(cli, instance: str) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(cli("exec", instance, "--", "ls").out.split())


def versions(cli, instance: str) -> list[str | None]:  # type: ignore[no-untyped-def]
    return [entry["workspace_version"] for entry in json.loads(cli("log", instance, "--json").out)]


def test_a_failed_block_stops_the_run_and_exits_1_with_a_summary(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", str(write(tmp_path, FAILING)))
    assert result.code == 1, result
    assert "── message 1 · bash ──\nfirst\n" in result.out
    assert "── message 2 · bash ──\n[exit code 3]\n" in result.out
    assert "message 3" not in result.out  # stopped at the failure
    summary = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert summary == ["error: 1 of 4 blocks failed: message 2 (bash, exit 3); stopped there, 2 not run"]
    assert "run --resume" in result.err and "Traceback" not in result.err
    instance = last_line(result.out)  # the id is still the last line of stdout
    assert files(cli, instance) == ["a.txt", "b.txt"]  # the instance keeps what ran
    linked = versions(cli, instance)
    assert linked[1] and linked[2] is None and linked[3] is None  # unfinished messages stay unlinked


def test_keep_going_runs_every_block_and_still_fails(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = write(tmp_path, FAILING.replace("```bash\necho four", "```python\n1/0\n```\n\n```bash\necho four"))
    doc.write_text(
        doc.read_text().replace(
            "## user\n", "```workspace-config\nresources:\n  - type: local_shell\n  - type: python\n```\n\n## user\n", 1
        )
    )
    result = cli("run", str(doc), "--keep-going", "--json")
    assert result.code == 1, result
    report = json.loads(result.out)
    assert report["failed"] == [
        {"message": 2, "block": "bash", "failure": "exit 3"},
        {"message": 3, "block": "python", "failure": "ZeroDivisionError"},
    ]
    assert report["stopped"] is None
    assert "2 of 5 blocks failed: message 2 (bash, exit 3), message 3 (python, ZeroDivisionError)" in result.err
    instance = report["instance"]
    assert files(cli, instance) == ["a.txt", "b.txt", "c.txt", "d.txt"]
    assert all(versions(cli, instance)[1:])


def test_resume_runs_what_the_stopped_run_left(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = last_line(cli("run", str(write(tmp_path, FAILING))).out)
    resumed = cli("run", "--resume", instance, "--keep-going")
    assert resumed.code == 1  # message 2 still fails, but now everything ran
    assert "message 1" not in resumed.out and "── message 3 · bash ──" in resumed.out
    assert last_line(resumed.out) == instance
    assert files(cli, instance) == ["a.txt", "b.txt", "c.txt", "d.txt"]
    assert all(versions(cli, instance)[1:])
    again = cli("run", "--resume", instance)
    assert again.code == 0 and "nothing to resume" in again.err


def test_resume_after_the_run_was_killed(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL in the middle of a block: resume runs that message again from the version before it, then the rest."""
    doc = write(tmp_path, FAILING.replace("exit 3", "touch started; sleep 5"))
    process = subprocess.Popen(
        [sys.executable, "-m", "domarkx", "run", str(doc), "-q", "--name", "killed"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        home = Path(os.environ["DOMARKX_HOME"])
        while not list(home.glob("resources/*/work/started")):  # the slow block is running
            assert process.poll() is None, "the run ended before its slow block"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert versions(cli, "killed")[1:] == [versions(cli, "killed")[1], None, None]
    resumed = cli("run", "--resume", "killed")
    assert resumed.code == 0, resumed
    assert "message 1" not in resumed.out and "── message 2 · bash ──" in resumed.out
    assert files(cli, "killed") == ["a.txt", "b.txt", "c.txt", "d.txt", "started"]
    assert all(versions(cli, "killed")[1:])


def test_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    doc = write(tmp_path, FAILING.replace("exit 3", "touch started; sleep 30"))
    process = subprocess.Popen(
        [sys.executable, "-m", "domarkx", "run", str(doc), "--name", "stopped"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    home = Path(os.environ["DOMARKX_HOME"])
    while not list(home.glob("resources/*/work/started")):
        assert process.poll() is None, "the run ended before its slow block"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted in message 2: the instance keeps what ran; `domarkx run --resume " in err


def test_a_timed_out_block_is_a_failure(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = write(tmp_path, '```session-config\n{"timeout": 1}\n```\n\n## assistant\n\n```bash\nsleep 30\n```\n')
    result = cli("run", str(doc))
    assert result.code == 1
    assert "1 of 1 blocks failed: message 0 (bash, timed out)" in result.err


def test_a_block_naming_a_resource_that_cannot_run_it_fails_in_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", str(write(tmp_path, "## assistant\n\n```bash resource=nope\nls\n```\n")))
    assert result.code == 1
    assert "message 0 (bash, no resource 'nope' runs bash code)" in result.err


def test_outputs_are_headed_and_odd_bytes_print(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = "## assistant\n\n```bash\nprintf 'caf\\351\\n'\n```\n\n```sh\ntrue\n```\n"
    first = cli("run", str(write(tmp_path, doc)))
    assert first.code == 0, first
    assert first.out.startswith(
        "── message 0 · bash ──\ncaf\ufffd\n── message 0 · sh ──\n"
    )  # a silent block: no output
    again = cli("run", str(tmp_path / "doc.md"))  # the cached output prints the same, marked
    assert again.out.startswith("── message 0 · bash · CACHED ──\ncaf\ufffd\n── message 0 · sh · CACHED ──\n")


TOOL_DOC = """\
## user

> write a file

## assistant

```json tool-call id=c1 name=run_command
{"command": "echo real > f.txt; cat f.txt"}
```

## tool

```text tool-result id=c1
FORGED
```

## assistant

> done
"""


def test_a_forged_tool_result_is_replaced_by_the_re_run(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", str(write(tmp_path, TOOL_DOC)), "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["replaced"] == [{"message": 1, "call": "c1"}]
    exported = cli("export", json.loads(result.out)["instance"]).out
    assert "FORGED" not in exported and "```text tool-result id=c1\nreal\n```" in exported
    # the export now tells the truth: running it again replaces nothing and keeps it byte for byte
    again = cli("run", str(write(tmp_path, exported, "again.md")), "--json")
    assert json.loads(again.out)["replaced"] == []
    assert cli("export", json.loads(again.out)["instance"]).out == exported


def test_a_call_to_a_tool_no_resource_offers_keeps_its_recorded_result(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = TOOL_DOC.replace("name=run_command", "name=deploy_everything")
    result = cli("run", str(write(tmp_path, doc)), "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["replaced"] == []
    assert "FORGED" in cli("export", json.loads(result.out)["instance"]).out


@pytest.mark.parametrize("args", [(), ("doc.md", "--resume", "x"), ("--resume", "x", "--name", "y")])
def test_ref_or_resume_but_not_both(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, FAILING)
    monkeypatch.chdir(tmp_path)
    result = cli("run", *args)
    assert result.code == 2 and result.err.startswith("error: give REF|PATH, or --resume INSTANCE")
