"""save/load and push/pull with the built-in plugins (their own export_versions/import_versions)."""

from __future__ import annotations

from pathlib import Path

from registry_service import Registry
from transfer_helpers import Homes

from domarkx.data.store import Store
from domarkx.session.instance import InstanceManager

PYTHON_DOC = """\
---
title: python travels
---

```workspace-config
resources:
  - type: python
```

## user

> start

## assistant

```python
x = 41
rows = [dict(n=i, sq=i * i) for i in range(3)]
```

## user

> change it, and leave a file

## assistant

```python
x += 1
open("answer.txt", "w").write(str(x))
```

## user

> more

## assistant

```python
import collections
counts = collections.Counter("abracadabra")
```
"""

PROBE = """\
import os
hidden = {"In", "Out", "exit", "quit", "get_ipython", "os"}
print(sorted(k for k in globals() if not k.startswith("_") and k not in hidden))
print(globals().get("x"), globals().get("rows"), globals().get("counts"))
print(open("answer.txt").read() if os.path.exists("answer.txt") else None)
"""


def states(instance: str) -> list[str]:
    """What the kernel holds (names, values) and the file, at every message, through forks."""
    found = []
    with Store() as store:
        manager = InstanceManager(store)
        for at in range(len(manager.get(instance).messages)):
            fork = manager.fork(instance, at)
            workspace = manager.workspaces.open(fork.workspace_id)
            try:
                found.append(manager.workspaces.call(workspace, "execute_python", {"code": PROBE}).text)
            finally:
                manager.workspaces.close(workspace)
    return found


def test_python_sessions_travel_by_bundle_and_registry(  # type: ignore[no-untyped-def]
    cli, homes: Homes, make_session, plain_registry: Registry, tmp_path: Path
) -> None:
    homes.use("a")
    instance = make_session(PYTHON_DOC, name="py")
    expected = states(instance)
    assert "42" in expected[-1] and "Counter" in expected[-1] and "rows" in expected[1]
    bundle = tmp_path / "py.tar"
    assert cli("save", "py", "-o", str(bundle)).code == 0
    assert cli("push", "py", f"{plain_registry.host}/team/python", "--insecure").code == 0
    export = cli("export", instance).out

    homes.use("b")
    assert cli("load", str(bundle)).out.strip() == instance
    assert cli("export", instance).out == export
    assert states(instance) == expected

    homes.use("c")
    assert cli("pull", f"{plain_registry.host}/team/python", "--insecure").out.strip() == instance
    assert states(instance) == expected
    assert cli("doctor").code == 0
