"""``domarkx mcp`` over stdio, driven by the official SDK's client as an agent would drive it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
from mcphelp import call, stdio, tree, wait_for_line, work_dir

WORKSPACE_TOOLS = ["run_command", "read_file", "write_file", "edit_file", "list_dir"]
SESSION_TOOLS = ["checkpoint", "log", "diff", "rewind", "fork"]
DOC = """\
---
title: agent at work
---

## user

> Tidy the project.
"""


def document(tmp_path: Path) -> str:
    path = tmp_path / "task.md"
    path.write_text(DOC)
    return str(path)


def served_instance(errlog: Path) -> str:
    return wait_for_line(errlog, "serving instance ").rsplit(" ", 1)[1]


async def agent(ref: str, home: Path, errlog: Path) -> dict[str, object]:
    """What an agent does: list, change files through the shell, checkpoint, change more, look, rewind, fork."""
    with errlog.open("w") as sink:
        async with stdio(ref, home, sink) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert list(tools) == WORKSPACE_TOOLS + SESSION_TOOLS
            assert tools["run_command"].input_schema["required"] == ["command"]
            assert set(tools["diff"].input_schema["properties"]) == {"from", "to"}
            await call(client, "run_command", command="mkdir src && printf 'one\\n' > src/a.txt")
            text, _ = await call(client, "checkpoint", note="one file")
            point = int(re.search(r"is message (\d+)", text).group(1))  # type: ignore[union-attr]
            await call(
                client, "run_command", command="printf 'two\\n' > src/b.txt; rm src/a.txt; ln -s /etc/passwd leak"
            )
            await call(client, "write_file", path="notes.md", content="# notes\n")
            hostile = [await call(client, "read_file", path=p) for p in ("../../../etc/passwd", "leak", "/etc/shadow")]
            oversized = await call(client, "write_file", path="big.txt", content="x" * 1_500_000)
            listing, _ = await call(client, "log")
            changes = await call(client, "diff", **{"from": point})
            before = tree(work_dir(home, served_instance(errlog)))
            rewound, _ = await call(client, "rewind", to=point)
            forked, _ = await call(client, "fork", at=point)
    return {
        "point": point,
        "hostile": hostile,
        "oversized": oversized,
        "log": listing,
        "diff": changes,
        "before": before,
        "hidden": re.search(r"hidden instance (\w+)", rewound).group(1),  # type: ignore[union-attr]
        "fork": re.search(r"new instance (\w+)", forked).group(1),  # type: ignore[union-attr]
    }


def calls(cli, instance: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The tool calls recorded in an instance's conversation, in order."""
    exported = cli("export", instance).out
    return re.findall(r"tool-call id=mcp_\w+ name=(\w+)", exported)


def test_a_session_is_recorded_rewound_forked_and_exported(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    errlog = tmp_path / "server.log"
    seen = anyio.run(agent, document(tmp_path), domarkx_home, errlog)
    instance = served_instance(errlog)

    assert all(failed and "refused" in text for text, failed in seen["hostile"])  # type: ignore[attr-defined]
    text, failed = seen["oversized"]  # type: ignore[misc]
    assert failed and "more than the 1000000" in text
    assert "checkpoint" in seen["log"] and "one file" in seen["log"]  # type: ignore[operator]
    assert seen["diff"][1] is False and "== local_shell" in seen["diff"][0]  # type: ignore[index]

    at_checkpoint = {"src/a.txt": "one\n"}
    assert tree(work_dir(domarkx_home, instance)) == at_checkpoint
    assert tree(work_dir(domarkx_home, seen["fork"])) == at_checkpoint  # type: ignore[arg-type]
    assert seen["before"] == {"leak": "-> /etc/passwd", "notes.md": "# notes\n", "src/b.txt": "two\n"}
    assert cli("instances", "start", seen["hidden"]).code == 0
    assert tree(work_dir(domarkx_home, seen["hidden"])) == seen["before"]  # type: ignore[arg-type]

    # every call is recorded (the oversized one was refused at the door), the rewind cut the tail into the hidden fork
    assert calls(cli, instance) == ["run_command", "checkpoint", "rewind", "fork"]
    assert calls(cli, seen["hidden"]) == [  # type: ignore[arg-type]
        "run_command", "checkpoint", "run_command", "write_file", "read_file", "read_file", "read_file", "log", "diff"
    ]  # fmt: skip
    log = json.loads(cli("log", instance, "--json").out)
    assert log[seen["point"]]["summary"].startswith("checkpoint 'one file'")  # type: ignore[index]
    assert all(e["workspace_version"] for e in log if e["role"] == "assistant")

    exported = cli("export", instance).out
    assert '"name": "test-client"' in exported and '"version": "1.2.3"' in exported
    again = tmp_path / "again.md"
    again.write_text(exported)
    snapshot = cli("import", str(again)).out.strip().splitlines()[-1]
    assert cli("export", snapshot).out == exported
    rerun = cli("run", str(again), "-q").out.strip().splitlines()[-1]
    assert cli("export", rerun).out == exported
    assert tree(work_dir(domarkx_home, rerun)) == at_checkpoint


def test_diff_shows_the_files_that_changed(tmp_path: Path, domarkx_home: Path) -> None:
    async def drive() -> str:
        with (tmp_path / "server.log").open("w") as sink:
            async with stdio(document(tmp_path), domarkx_home, sink) as client:
                await call(client, "run_command", command="printf 'one\\n' > a.txt")
                await call(client, "run_command", command="printf 'two\\n' >> a.txt; printf 'new\\n' > b.txt")
                text, failed = await call(client, "diff", **{"from": 2})
                assert not failed
                return text

    text = anyio.run(drive)
    assert "modified a.txt  +1 -0" in text and "+two" in text and "added    b.txt" in text
