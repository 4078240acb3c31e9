"""``domarkx verify``: nondeterminism (--twice), the capture manifest, what it checks and leaves behind."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from remote_plugin import COUNTER

from domarkx import _entrypoints

CLOCK = """\
## user

> what time is it

## assistant

```bash
date +%s%N > now; cat now
```

## assistant

```bash
echo steady > s.txt
```
"""


def exported(cli, tmp_path: Path, text: str, *run_args: str) -> Path:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    result = cli("run", str(doc), "-q", *run_args)
    export = tmp_path / "export.md"
    export.write_text(cli("export", result.out.strip().splitlines()[-1]).out)
    return export


def test_twice_tells_nondeterminism_from_divergence(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    export = exported(cli, tmp_path, CLOCK)
    once = cli("verify", str(export))
    assert once.code == 1 and "message 1 diverged from the record: output of block 0 (bash)" in once.err
    assert "--twice" in once.err
    twice = cli("verify", str(export), "--twice", "--json")
    assert twice.code == 0, twice
    report = json.loads(twice.out)
    statuses = {(c["message"], c["what"]): c["status"] for c in report["checks"]}
    assert statuses[(1, "output of block 0 (bash)")] == "nondeterministic"
    assert statuses[(1, "workspace")] == "nondeterministic"
    assert statuses[(2, "workspace")] == "nondeterministic"  # it inherits message 1's clock file
    caveats = {(c["message"], c["step"]): c["caveats"] for c in report["capture"]}
    assert caveats[(1, "block 0 (bash)")] == ["its result differed between two re-runs (nondeterministic)"]
    assert caveats[(1, "workspace")] == ["differed between two re-runs: local_shell:now"]


def test_a_never_run_document_has_nothing_to_compare(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "plain.md"
    doc.write_text(CLOCK)
    result = cli("verify", str(doc))
    assert result.code == 0
    assert "? message 1" in result.out and "nothing recorded to compare" in result.out
    assert "not checked:\n  - the model's replies" in result.out


def test_verify_leaves_nothing_behind_and_takes_instances_and_snapshots(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(CLOCK.replace("date +%s%N > now; cat now", "echo fixed > now; cat now"))
    instance = cli("run", str(doc), "-q", "--name", "kept").out.strip()
    before = (cli("instances", "ls", "-q").out, cli("snapshots", "ls", "-q").out)
    assert cli("verify", "kept").code == 0
    committed = cli("commit", "kept", "-t", "done").out.strip()
    assert cli("verify", "done").code == 0
    assert cli("instances", "ls", "-q").out == before[0]
    assert cli("snapshots", "ls", "-q").out.split() == sorted([*before[1].split(), committed], key=before[1].find)
    assert cli("verify", instance[:12], "--json").code == 0


NETWORK = "## assistant\n\n```bash\ncurl -sS http://example.com\n```\n"


def test_a_failure_on_denied_network_is_in_the_manifest(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    export = exported(cli, tmp_path, NETWORK, "--keep-going")
    report = json.loads(cli("verify", str(export), "--json").out)
    assert report["ok"]
    [capture] = report["capture"]
    assert capture["step"] == "block 0 (bash)"
    assert capture["caveats"][0].startswith("failed on denied network access ('Could not resolve host')")


@pytest.fixture
def remote_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real = importlib.metadata.entry_points
    remote = importlib.metadata.EntryPoint(
        name="remote", value="remote_plugin:RemotePlugin", group=_entrypoints.PLUGINS
    )

    def with_remote(**params: str) -> importlib.metadata.EntryPoints:
        found = real(**params)
        return (
            importlib.metadata.EntryPoints([*found, remote]) if params.get("group") == _entrypoints.PLUGINS else found
        )

    _entrypoints._group.cache_clear()
    monkeypatch.setattr(_entrypoints, "entry_points", with_remote)
    yield
    _entrypoints._group.cache_clear()


REMOTE = """\
```workspace-config
resources:
  - type: local_shell
    name: sh
  - type: remote
```

## assistant

```json tool-call id=b1 name=remote__bump
{}
```

## tool

```text tool-result id=b1
count is 1
```

## assistant

```bash
echo after > f.txt
```
"""


def test_calls_to_resources_that_cannot_be_restored_are_replayed(
    cli, tmp_path: Path, domarkx_home: Path, remote_installed: None
) -> None:  # type: ignore[no-untyped-def]
    export = exported(cli, tmp_path, REMOTE)
    assert (domarkx_home / COUNTER).read_text() == "1"  # run called the service
    report = json.loads(cli("verify", str(export), "--json").out)
    assert report["ok"], report
    assert (domarkx_home / COUNTER).read_text() == "1"  # verify did not
    [capture] = report["capture"]
    assert capture["message"] == 0 and capture["step"] == "call b1 (remote__bump)"
    assert "cannot be restored: its recorded result was replayed, not re-run" in capture["caveats"][0]


def test_a_forged_tool_result_in_the_record_diverges(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = (
        '## assistant\n\n```json tool-call id=c1 name=run_command\n{"command": "echo real"}\n```\n\n'
        "## tool\n\n```text tool-result id=c1\nreal\n```\n"
    )
    export = exported(cli, tmp_path, doc)
    export.write_text(export.read_text().replace("tool-result id=c1\nreal\n", "tool-result id=c1\nforged\n"))
    result = cli("verify", str(export))
    assert result.code == 1 and "output" not in result.err
    assert "message 0 diverged from the record: result of call c1 (run_command)" in result.err
    assert "    -forged\n    +real\n" in result.out


def test_a_missing_document_is_a_one_line_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("verify", str(tmp_path / "nope.md"))
    assert result.code == 2 and result.err.startswith("error: no such file: ") and "hint:" in result.err


def test_the_setup_block_is_listed_as_unchecked_only_when_there_is_one(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plain = tmp_path / "plain.md"
    plain.write_text(CLOCK)
    assert "the setup block" not in cli("verify", str(plain)).out
    with_setup = tmp_path / "setup.md"
    with_setup.write_text("```python setup-script\nready = True\n```\n\n" + CLOCK)
    result = cli("verify", "--json", str(with_setup))
    assert result.code == 0, result
    assert any(item.startswith("the setup block") for item in json.loads(result.out)["not_checked"])
