"""What an offline run and a turn cost the store, counted (never timed): the fixes behind bench_scaling's curves."""

from __future__ import annotations

from pathlib import Path

from domarkx.data.store import Store
from domarkx.llm.replay import ReplayProvider
from domarkx.session.instance import InstanceManager
from domarkx.session.manager import SessionManager


def document(pairs: int) -> bytes:
    parts = ["---\ntitle: writes\n---\n"]
    for n in range(pairs):
        parts += [f"## user\n\n> question {n}\n", f'## assistant\n\n> answer {n}\n\n```json\n{{"n": {n}}}\n```\n']
    return "\n".join(parts).encode()


def manager(home: Path, pairs: int) -> tuple[InstanceManager, str]:
    instances = InstanceManager(Store(home))
    snapshot = instances.snapshots.build(document(pairs), path="doc.md", base_dir=home)
    instances.snapshots.save(snapshot)
    return instances, snapshot.id


def test_an_offline_run_stores_each_message_a_bounded_number_of_times(domarkx_home: Path) -> None:
    pairs = 30
    instances, snapshot_id = manager(domarkx_home, pairs)
    rows: list[str] = []
    instances.store.db.set_trace_callback(lambda sql: rows.append(sql) if "INTO messages" in sql else None)
    instance = instances.create(instances.snapshots.get(snapshot_id))
    instances.store.db.set_trace_callback(None)
    assert len(instance.messages) == 2 * pairs
    assert all(m.workspace_version for m in instance.messages if m.role == "assistant")
    # one insert per message, then one update per assistant message: linear, where rewriting
    # the tail after each assistant message was quadratic (930 rows here)
    assert len(rows) == 2 * pairs + pairs
    stored = instances.get(instance.id)
    assert [m.workspace_version for m in stored.messages] == [m.workspace_version for m in instance.messages]


def test_a_conversation_loads_its_snapshot_once(domarkx_home: Path) -> None:
    instances, snapshot_id = manager(domarkx_home, 1)
    instance = instances.create(instances.snapshots.get(snapshot_id))
    sessions = SessionManager(instances)
    loads: list[str] = []
    get = instances.snapshots.get
    instances.snapshots.get = lambda ref: loads.append(ref) or get(ref)  # type: ignore[method-assign]
    provider = sessions.provider_for(instance, "replay:")
    for n in range(3):
        sessions.send(instance, f"turn {n}", provider)
    assert loads == [snapshot_id]
    assert [m.content for m in instance.messages[-2:]] == ["turn 2", "You said: turn 2"]
    assert isinstance(provider, ReplayProvider)
