"""What the transfer tests share: a session document, several homes, and how to compare sessions."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
from pathlib import Path

import pytest

DOC = """\
---
title: travelling
---

```workspace-config
resources:
  - type: testfiles
```

## user

> make a file

## assistant

```bash
echo one > a.txt
```

## user

> and two more, one with an odd name

## assistant

```bash
echo two > b.txt
mkdir -p sub && printf 'x\\ny' > "sub/odd name
with newline.txt"
```

## user

> change the first

## assistant

```bash
echo changed >> a.txt
```
"""


class Homes:
    """Several DOMARKX_HOMEs in one test; ``use(name)`` makes one current."""

    def __init__(self, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.base = base
        self.monkeypatch = monkeypatch

    def use(self, name: str) -> Path:
        home = self.base / name
        home.mkdir(parents=True, exist_ok=True)
        self.monkeypatch.setenv("DOMARKX_HOME", str(home))
        return home


def workspace_at(cli, instance: str, at: int) -> str:  # type: ignore[no-untyped-def]
    """Every file of the workspace at message ``at`` (through a fork), with its bytes' digest."""
    fork = cli("fork", instance, "--at", str(at), "-q")
    assert fork.code == 0, fork
    listing = cli("exec", fork.out.strip(), "--", "find . -type f -print0 | sort -z | xargs -0r sha256sum")
    assert listing.code == 0, listing
    return str(listing.out)


def log(cli, instance: str) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    result = cli("log", instance, "--json")
    assert result.code == 0, result
    return list(json.loads(result.out))


def visible_state(home: Path) -> dict[str, object]:
    """Everything a user could see of a home: rows, resource directories, scratch space."""
    state: dict[str, object] = {}
    if (home / "store.db").exists():
        db = sqlite3.connect(home / "store.db")
        for table in ("snapshots", "tags", "instances", "messages", "workspaces", "resources"):
            state[table] = sorted(map(tuple, db.execute(f"SELECT * FROM {table}")))
        db.close()
    resources = home / "resources"
    state["resource_dirs"] = sorted(p.name for p in resources.iterdir()) if resources.is_dir() else []
    scratch = home / "transfer"
    state["scratch"] = sorted(p.name for p in scratch.iterdir()) if scratch.is_dir() else []
    return state


def members(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(bundle) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]


def write_members(bundle: Path, items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with tarfile.open(bundle, "w") as tar:
        for info, data in items:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
