"""save/load and push/pull with the built-in plugins (their own export_versions/import_versions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
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


def _exports(plugin_type: str) -> bool:
    """Whether a built-in plugin implements moving versions (not every lane has landed)."""
    from domarkx import _entrypoints
    from domarkx.workspace.plugin import Plugin

    cls = _entrypoints.load(_entrypoints.PLUGINS, plugin_type, what="plugin")
    return cls.export_versions is not Plugin.export_versions


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


SHELL_SQL_DOC = """\
---
title: shell and sqlite travel
---

```workspace-config
resources:
  - type: local_shell
    name: work
  - type: sqlite
    name: db
    setup: CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER);
```

## user

> start

## assistant

```bash resource=work
mkdir -p src && echo 'print("hi")' > src/app.py && printf 'odd\\n' > "src/odd name.txt"
```

```sql resource=db
INSERT INTO t VALUES ('a', 1);
```

## user

> change things

## assistant

```bash resource=work
echo '# more' >> src/app.py && rm "src/odd name.txt" && mkdir empty
```

```sql resource=db
UPDATE t SET v = v + 41 WHERE k = 'a'; INSERT INTO t VALUES ('b', 2);
```
"""

_NO_EXPORT = not _exports("local_shell") or not _exports("sqlite")


@pytest.mark.skipif(_NO_EXPORT, reason="local_shell/sqlite do not export versions yet (core lane)")
def test_shell_and_sqlite_sessions_travel(  # type: ignore[no-untyped-def]
    cli, homes: Homes, make_session, plain_registry: Registry, tmp_path: Path
) -> None:
    homes.use("a")
    instance = make_session(SHELL_SQL_DOC, name="shellsql")
    expected = shell_sql_states(cli, instance)
    assert "42" in expected[-1] and "empty" in expected[-1]
    bundle = tmp_path / "s.tar"
    assert cli("save", "shellsql", "-o", str(bundle)).code == 0
    target = f"{plain_registry.host}/team/shellsql"
    first = json.loads(cli("push", "shellsql", target, "--insecure", "--json").out)
    assert cli("exec", "shellsql", "--resource", "work", "--", "echo x >> src/app.py").code == 0
    second = json.loads(cli("push", "shellsql", target, "--insecure", "--json").out)
    assert second["uploaded"] < first["uploaded"] / 2 and second["blobs"]["uploaded"] == 2  # one pack, the records
    export = cli("export", instance).out
    after = shell_sql_states(cli, instance)  # the exec is part of the state at the last message
    assert after[:-1] == expected[:-1] and after[-1] != expected[-1]
    after = shell_sql_states(cli, instance)  # the exec is part of the state at the last message
    assert after[:-1] == expected[:-1] and after[-1] != expected[-1]

    homes.use("b")
    assert cli("load", str(bundle)).out.strip() == instance
    assert cli("export", instance).out == export
    assert shell_sql_states(cli, instance) == expected
    homes.use("c")
    assert cli("pull", target, "--insecure").out.strip() == instance
    assert shell_sql_states(cli, instance) == after
    assert cli("exec", instance, "--resource", "work", "--", "tail -1 src/app.py").out == "x\n"  # the head came too
    assert cli("doctor").code == 0


LISTING = (
    "find . -print0 | sort -z | xargs -0r ls -ld --time-style=+ | awk '{print $1, $NF}';"
    " find . -type f -print0 | sort -z | xargs -0r sha256sum"
)


def shell_sql_states(cli, instance: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The files (with their bytes' digests) and the table, at every message, through forks."""
    found = []
    messages = sum(e["role"] not in ("exec", "cp") for e in json.loads(cli("log", instance, "--json").out))
    for at in range(messages):
        fork = cli("fork", instance, "--at", str(at), "-q").out.strip()
        files = cli("exec", fork, "--resource", "work", "--", LISTING).out
        table = cli("exec", fork, "--resource", "db", "--", "SELECT * FROM t ORDER BY k").out
        found.append(files + table)
    return found
