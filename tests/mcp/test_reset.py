"""``domarkx reset``: rewind in place, every resource, the tail kept in a hidden fork."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domarkx.data.instances import Instances
from domarkx.data.store import Store
from domarkx.errors import DomarkxError
from domarkx.session.instance import InstanceManager, lock_name
from domarkx.session.outofband import exec_code

DOC = """\
```workspace-config
resources:
  - type: local_shell
    name: sh
  - type: sqlite
    name: db
    setup: "CREATE TABLE t (x INTEGER);"
```

## user

> one

## assistant

```bash
echo one > a.txt
```

```sql
INSERT INTO t VALUES (1);
```

## user

> two

## assistant

```bash
echo two > b.txt
printf x > "$(printf 'new\\nline.txt')"
```

```sql
INSERT INTO t VALUES (2);
```
"""


def run_doc(cli, tmp_path: Path, text: str = DOC) -> str:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    result = cli("run", str(doc), "-q")
    assert result.code == 0, result
    return str(result.out.strip().splitlines()[-1])


def files(cli, instance: str) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(cli("exec", instance, "--resource", "sh", "--", "ls -b").out.split())


def rows(home: Path, instance: str) -> list[int]:
    with Store(home) as store:
        manager = InstanceManager(store)
        workspace = manager.workspaces.open(manager.get(instance).workspace_id)
        outcome = manager.workspaces.call(workspace, "db__query", {"sql": "SELECT x FROM t ORDER BY x"})
        return [row[0] for row in outcome.output["rows"]]


def test_reset_rewinds_every_resource_and_keeps_the_tail_hidden(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path)
    names = files(cli, instance)
    assert names == ["a.txt", "b.txt", "new\\nline.txt"]
    before = cli("export", instance).out

    result = cli("reset", instance, "--at", "1")
    assert result.code == 0, result
    hidden = result.out.strip()
    assert "messages 2..3" in result.err and f"domarkx fork {hidden[:12]} --at 3" in result.err

    assert [e["index"] for e in json.loads(cli("log", instance, "--json").out)] == [0, 1]
    assert files(cli, instance) == ["a.txt"]
    assert rows(domarkx_home, instance) == [1]

    listed = json.loads(cli("instances", "ls", "--json").out)
    assert [r["id"] for r in listed] == [instance]
    everything = {r["id"]: r for r in json.loads(cli("instances", "ls", "-a", "--json").out)}
    assert everything[hidden]["hidden"] is True and everything[hidden]["parent_id"] == instance
    assert everything[hidden]["parent_at"] == 1
    assert everything[hidden]["status"] == "stopped" and everything[hidden]["messages"] == 4

    # the hidden fork is the instance as it was: same conversation, same workspace
    assert cli("export", hidden).out == before
    back = cli("fork", hidden, "--at", "3", "-q").out.strip()
    assert len(files(cli, back)) == 3
    assert rows(domarkx_home, back) == [1, 2]


def test_the_head_after_exec_is_kept_too(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path)
    cli("exec", instance, "--resource", "sh", "--", "echo three > c.txt")
    hidden = cli("reset", instance, "--at", "1").out.strip()
    assert "c.txt" not in files(cli, instance)
    assert not any(e["role"] == "exec" for e in json.loads(cli("log", instance, "--json").out))
    assert cli("instances", "start", hidden).code == 0
    assert "c.txt" in files(cli, hidden)
    assert [e["role"] for e in json.loads(cli("log", hidden, "--json").out)][-1] == "exec"  # the event went too


def test_reset_at_the_last_message_keeps_a_later_exec(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An exec after the last message is the state the conversation stands at (docs/sessions.md)."""
    instance = run_doc(cli, tmp_path)
    cli("exec", instance, "--resource", "sh", "--", "echo three > c.txt")
    result = cli("reset", instance, "--at", "3")
    assert result.code == 0 and result.out == "", result
    assert "c.txt" in files(cli, instance)


def test_nothing_to_discard_is_a_no_op(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path)
    result = cli("reset", instance, "--at", "3")
    assert result.code == 0 and result.out == "" and "nothing to reset" in result.err
    assert len(json.loads(cli("instances", "ls", "-a", "--json").out)) == 1


@pytest.mark.parametrize("at", ["-1", "4", "99"])
def test_out_of_range_is_a_one_line_usage_error(cli, tmp_path: Path, at: str) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path)
    result = cli("reset", instance, "--at", at)
    assert result.code == 2
    assert result.err.startswith(f"error: --at {at} is out of range: the messages are 0..3")
    assert "Traceback" not in result.err


def test_an_instance_held_elsewhere_is_busy(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path)
    with Store(domarkx_home) as other, other.hold(lock_name(instance)) as free:
        assert free
        result = cli("reset", instance, "--at", "1")
    assert result.code == 1 and "busy" in result.err
    assert len(json.loads(cli("log", instance, "--json").out)) == 4


def test_an_object_held_across_a_reset_follows_the_new_workspace(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    instance_id = run_doc(cli, tmp_path)
    with Store(domarkx_home) as store:
        manager = InstanceManager(store)
        held = manager.get(instance_id)  # e.g. an open `chat`
        assert cli("reset", instance_id, "--at", "1").code == 0
        with manager.using(held):
            assert held.workspace_id == manager.get(instance_id).workspace_id
            assert len(held.messages) == 2
        outcome = exec_code(manager, instance_id, "ls", resource="sh").outcome
    assert outcome.output["stdout"].split() == ["a.txt"]


def test_a_failed_reset_changes_nothing_and_leaves_nothing(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    domarkx_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instance_id = run_doc(cli, tmp_path)
    before = cli("export", instance_id).out

    def broken(*args: object) -> None:
        raise DomarkxError("disk on fire")

    with monkeypatch.context() as patched:
        patched.setattr(Instances, "rewind", broken)
        result = cli("reset", instance_id, "--at", "1")
    assert result.code == 1 and "disk on fire" in result.err
    assert cli("export", instance_id).out == before
    assert len(files(cli, instance_id)) == 3
    with Store(domarkx_home) as store:
        workspaces, stray = InstanceManager(store).workspaces.abandoned()
    assert workspaces == [] and stray == []


def test_the_hidden_tail_remembers_the_instances_settings(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    instance = run_doc(cli, tmp_path)
    with Store(domarkx_home) as store:
        store.instances.set_settings(instance, {"model": "openai:fake-model"})
    hidden = cli("reset", instance, "--at", "1").out.strip()
    with Store(domarkx_home) as store:
        assert store.instances.settings(hidden) == {"model": "openai:fake-model"}
        assert store.instances.settings(instance) == {"model": "openai:fake-model"}
