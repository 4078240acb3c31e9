"""load and pull judge an arriving instance's powers as `run` does, before anything is stored.

A bundle or artifact comes from a stranger: its instance's workspace is
recreated here with the options its document asks for (``sandbox: none``…), so
without trust (``domarkx trust DOC`` or ``--trust``) it is refused with one
line naming the session and the power, exit 2, and the home unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from registry_service import Registry
from transfer_helpers import Homes, visible_state

UNCONFINED = """\
---
title: asks for an unconfined shell
---

```workspace-config
resources:
  - type: local_shell
    name: sh
    sandbox: none
```

## user

> hello
"""


def home_state(cli, home: Path) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The listings a user sees, the rows, and every file of the home (plugins' object stores included)."""
    files = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and "store.db" not in p.name)
    return {
        "snapshots": cli("snapshots", "ls", "--json").out,
        "instances": cli("instances", "ls", "--json").out,
        "rows": visible_state(home),
        "files": files,
    }


def unconfined_session(cli, homes: Homes, tmp_path: Path) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """An instance named ``far`` that ran with --trust in home ``a``; its document and id."""
    homes.use("a")
    doc = tmp_path / "doc.md"
    doc.write_text(UNCONFINED)
    made = cli("run", str(doc), "-q", "--trust", "--name", "far")
    assert made.code == 0, made
    return doc, made.out.strip().splitlines()[-1]


def saved(cli, tmp_path: Path, ref: str) -> Path:  # type: ignore[no-untyped-def]
    bundle = tmp_path / "far.tar"
    result = cli("save", ref, "-o", str(bundle))
    assert result.code == 0, result
    return bundle


def receiver(cli, homes: Homes, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Home ``b``, holding a session of its own (so "unchanged" is not "still empty")."""
    home = homes.use("b")
    plain = tmp_path / "plain.md"
    plain.write_text("## user\n\n> hello\n")
    assert cli("run", str(plain), "-q").code == 0
    return home


def assert_refused(result, again: str) -> None:  # type: ignore[no-untyped-def]
    assert result.code == 2, result
    error, *hints = result.err.splitlines()
    assert error.startswith("error: ") and error.count("error:") == 1, result
    assert "instance far (" in error and "from doc.md" in error, error
    assert "local_shell: sandbox: none runs its commands unconfined" in error, error
    assert hints and all(h.startswith("  hint: ") for h in hints), result
    assert f"`{again}`" in hints[0] and "`domarkx trust doc.md`" in hints[0], hints


def test_load_refuses_an_untrusted_power_and_stores_nothing(cli, homes: Homes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _doc, instance = unconfined_session(cli, homes, tmp_path)
    bundle = saved(cli, tmp_path, "far")

    home = receiver(cli, homes, tmp_path)
    before = home_state(cli, home)
    assert_refused(cli("load", str(bundle)), f"domarkx load --trust {bundle}")
    assert home_state(cli, home) == before

    loaded = cli("load", "--trust", str(bundle))
    assert loaded.code == 0, loaded
    assert loaded.out.strip() == instance
    assert json.loads(cli("trust", "--list", "--json").out) == []  # --trust lasts one command


def test_trusting_the_document_lets_its_instance_load(cli, homes: Homes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Trust is keyed by the document's powers, so the receiver's `domarkx trust doc.md` covers the bundle."""
    doc, instance = unconfined_session(cli, homes, tmp_path)
    bundle = saved(cli, tmp_path, "far")
    homes.use("b")
    assert cli("trust", str(doc)).code == 0
    loaded = cli("load", str(bundle))
    assert loaded.code == 0, loaded
    assert loaded.out.strip() == instance


def test_a_snapshot_alone_loads_and_run_asks_for_trust(cli, homes: Homes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A snapshot runs nothing on arrival; `run` checks its powers when it would."""
    homes.use("a")
    doc = tmp_path / "doc.md"
    doc.write_text(UNCONFINED)
    snapshot = cli("import", str(doc), "-t", "far-doc").out.strip().splitlines()[-1]
    bundle = saved(cli, tmp_path, "far-doc")
    homes.use("b")
    loaded = cli("load", str(bundle))
    assert loaded.code == 0, loaded
    assert loaded.out.strip() == snapshot
    ran = cli("run", snapshot, "-q")
    assert ran.code == 2 and "sandbox: none" in ran.err, ran


def test_pull_refuses_an_untrusted_power_and_stores_nothing(  # type: ignore[no-untyped-def]
    cli, homes: Homes, tmp_path: Path, plain_registry: Registry
) -> None:
    _doc, instance = unconfined_session(cli, homes, tmp_path)
    target = f"{plain_registry.host}/team/unconfined:v1"
    pushed = cli("push", "far", target, "--insecure")
    assert pushed.code == 0, pushed

    home = receiver(cli, homes, tmp_path)
    before = home_state(cli, home)
    assert_refused(cli("pull", target, "--insecure"), f"domarkx pull --trust {target} --insecure")
    assert home_state(cli, home) == before

    pulled = cli("pull", target, "--insecure", "--trust")
    assert pulled.code == 0, pulled
    assert pulled.out.split() == [instance]
