"""Reading an instance without loading all of it, and where it came from (fork lineage)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domarkx.data.store import Store
from domarkx.errors import UsageError
from domarkx.session.instance import InstanceManager

DOC = """\
## user

> first file

## assistant

```bash
echo one > a.txt
```

## user

> second file

## assistant

```bash
echo two > b.txt
```
"""


@pytest.fixture
def made(domarkx_home: Path) -> tuple[InstanceManager, str]:
    instances = InstanceManager(Store(domarkx_home))
    snapshot = instances.snapshots.build(DOC.encode(), path="doc.md", base_dir=domarkx_home)
    instances.snapshots.save(snapshot)
    return instances, instances.create(snapshot, name="lineage").id


def test_a_page_of_messages_and_a_summary_without_the_rest(made: tuple[InstanceManager, str]) -> None:
    instances, instance_id = made
    page = instances.messages("lineage", 1, 3)
    assert [m.role for m in page] == ["assistant", "user"]
    assert page[0].code[0].text == "echo one > a.txt\n"
    assert instances.messages(instance_id, 3) == instances.get(instance_id).messages[3:]

    summary = instances.summary("lineage")
    assert (summary["id"], summary["messages"], summary["parent_id"], summary["hidden"]) == (
        instance_id,
        4,
        None,
        False,
    )


def test_version_before_a_message_is_what_it_started_from(made: tuple[InstanceManager, str]) -> None:
    instances, instance_id = made
    instance = instances.get(instance_id)
    first, second = instance.messages[1].workspace_version, instance.messages[3].workspace_version
    assert first and second and first != second

    assert instances.version_before(instance_id, 1) == instances.initial_version(instance)
    assert instances.version_before(instance_id, 3) == first
    assert instances.version_before(instance_id, 4) == second
    info = instances.workspaces.version_info(second)
    assert list(info) == ["local_shell"]
    assert info["local_shell"][0] == "local_shell"


def test_a_fork_records_its_parent_and_ls_shows_it(cli, made: tuple[InstanceManager, str]) -> None:  # type: ignore[no-untyped-def]
    instances, instance_id = made
    fork = instances.fork("lineage", 1, name="branch")

    row = instances.store.instances.row(fork.id)
    assert (row.parent_id, row.parent_at, row.hidden) == (instance_id, 1, False)
    listed = {r["name"]: r for r in json.loads(cli("instances", "ls", "--json").out)}
    assert (listed["branch"]["parent_id"], listed["branch"]["parent_at"]) == (instance_id, 1)
    assert listed["lineage"]["parent_id"] is None
    table = cli("instances", "ls").out
    assert "lineage@1" in table  # the parent by name


def test_a_fork_remembers_its_parents_settings_whoever_forks_it(made: tuple[InstanceManager, str]) -> None:
    """InstanceManager.fork itself copies them: the UI, the MCP server and ``edit`` call it directly."""
    instances, instance_id = made
    assert instances.settings(instances.fork("lineage", 1).id) == {}
    remembered = {"model": "openai:fake-model", "approve": True, "max_steps": 3}
    instances.set_settings(instance_id, remembered)

    fork = instances.fork("lineage", 1, name="remembers")
    assert instances.settings(fork.id) == remembered
    instances.set_settings(fork.id, {"model": "openai:other"})  # its own from then on
    assert instances.settings(instance_id) == remembered


@pytest.mark.usefixtures("made")
def test_inspect_shows_where_each_resource_works(cli) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(cli("instances", "inspect", "lineage", "--json").out)
    (resource,) = data["resources"]
    assert resource["type"] == "local_shell"
    work = Path(resource["location"])
    assert sorted(p.name for p in work.iterdir()) == ["a.txt", "b.txt"]
    assert f"at {work}" in cli("instances", "inspect", "lineage").out


@pytest.mark.parametrize("name", ["abcd", "ABCD", "0123", "beef", "cafe1234", "db", "-x", "a b", ""])
def test_names_that_could_be_taken_for_ids_are_refused(made: tuple[InstanceManager, str], name: str) -> None:
    instances, _instance_id = made
    with pytest.raises(UsageError, match="invalid instance name"):
        instances.store.instances.check_new_name(name)


def test_an_id_wins_over_a_name_that_looks_like_it(cli, made: tuple[InstanceManager, str]) -> None:  # type: ignore[no-untyped-def]
    """A store from before names needed a non-hex character may hold a name equal to another instance's id prefix."""
    instances, instance_id = made
    other = instances.fork("lineage", 3, name="other")
    prefix = instance_id[:8]
    with instances.store.write() as db:
        db.execute("UPDATE instances SET name = ? WHERE id = ?", (prefix, other.id))

    assert cli("instances", "rm", "--force", prefix).code == 0

    remaining = {r["id"]: r["name"] for r in json.loads(cli("instances", "ls", "--json").out)}
    assert remaining == {other.id: prefix}
