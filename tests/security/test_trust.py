"""Powers a document asks for run only with the user's trust; setup-scripts run confined by default.

Through the real CLI: a document that asks for ``sandbox: none`` or a setup-script
marked ``host`` is refused by ``run`` with one positioned line and nothing made;
``domarkx trust`` (or ``--trust``) lets it run; trust survives an edited message
and not an edited power; it lives in ``$DOMARKX_CONFIG``, never in the store or
an export. A plain setup-script runs in a kernel, not in domarkx: it sees neither
domarkx's process nor its environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from security.test_secrets import readable_bytes

DOMARKX = str(Path(sys.executable).parent / "domarkx")

UNCONFINED = """\
---
title: asks for an unconfined shell
---

```workspace-config
resources:
  - type: sqlite
    name: db
  - type: local_shell
    name: sh
    sandbox: none
```

## user

> hello
"""

HOST_SETUP = """\
```python setup-script host
import os
from pathlib import Path
Path("where.txt").write_text(f"{os.getpid()} {os.environ.get('DOMARKX_TRUST_MARKER')}")
tools = []
```

## user

> hello
"""

KERNEL_SETUP = HOST_SETUP.replace("setup-script host", "setup-script")


def lines_with_errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if "error:" in line]


def nothing_made(cli) -> None:  # type: ignore[no-untyped-def]
    assert json.loads(cli("instances", "ls", "--json").out) == []
    report = json.loads(cli("doctor", "--json").out)
    assert report["ok"] and report["leftovers"] == [], report


def test_a_power_is_refused_at_its_line_and_nothing_is_made(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(UNCONFINED)
    refused = cli("run", str(doc))
    assert refused.code == 2, refused
    [error] = lines_with_errors(refused.err)
    assert error.startswith(f"{doc}:9:1: error: local_shell: sandbox: none runs its commands unconfined"), error
    assert f"domarkx trust {doc}" in refused.err and "--trust" in refused.err
    nothing_made(cli)


def test_trust_lets_it_run_keeps_across_messages_and_drops_with_the_power(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, domarkx_home: Path
) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(UNCONFINED)
    granted = cli("trust", str(doc))
    assert granted.code == 0, granted
    assert "may: local_shell: sandbox: none" in granted.out and "(line 9)" in granted.out
    assert cli("run", str(doc), "-q").code == 0

    doc.write_text(UNCONFINED.replace("> hello", "> hello, edited"))  # a message: still trusted
    assert cli("run", str(doc), "-q").code == 0
    doc.write_text(UNCONFINED.replace("name: sh", "name: shell"))  # the workspace: not any more
    assert cli("run", str(doc), "-q").code == 2

    [record] = json.loads(cli("trust", "--list", "--json").out)
    assert record["source"] == str(doc.resolve()) and len(record["powers"]) == 1
    digest = record["key"].removeprefix("sha256:")
    assert list((Path(os.environ["DOMARKX_CONFIG"]) / "trusted").glob(f"{digest}.json"))
    exported = [cli("export", i["id"]).out for i in json.loads(cli("instances", "ls", "--json").out)]
    assert not [label for label, data in readable_bytes(domarkx_home).items() if digest.encode() in data]
    assert all(digest not in text and "trust" not in text for text in exported)

    doc.write_text(UNCONFINED)
    assert cli("trust", "--revoke", str(doc)).code == 0
    assert cli("run", str(doc), "-q").code == 2
    assert cli("trust", "--revoke", str(doc)).code == 2


def test_trust_on_the_command_line_lasts_one_command(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(UNCONFINED)
    assert cli("run", str(doc), "-q", "--trust").code == 0
    assert cli("run", str(doc), "-q").code == 2
    assert json.loads(cli("trust", "--list", "--json").out) == []


def test_a_host_setup_script_needs_trust_and_then_runs_in_domarkx(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOMARKX_TRUST_MARKER", "seen-by-the-script")
    doc = tmp_path / "doc.md"
    doc.write_text(HOST_SETUP)
    refused = cli("run", str(doc))
    assert refused.code == 2
    [error] = lines_with_errors(refused.err)
    assert error.startswith(f"{doc}:1:1: error: a setup-script marked host runs inside domarkx"), error
    nothing_made(cli)

    instance = cli("run", str(doc), "-q", "--trust").out.strip()
    where = cli("exec", instance, "--", "cat where.txt").out.split()
    assert where == [str(os.getpid()), "seen-by-the-script"]


def test_a_plain_setup_script_runs_in_a_kernel_of_its_own(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOMARKX_TRUST_MARKER", "seen-by-the-script")
    doc = tmp_path / "doc.md"
    doc.write_text(KERNEL_SETUP)
    run = cli("run", str(doc), "-q")
    assert run.code == 0, run
    pid, marker = cli("exec", run.out.strip(), "--", "cat where.txt").out.split()
    assert int(pid) != os.getpid() and marker == "None"


@pytest.mark.parametrize("host", [False, True], ids=["kernel", "host"])
def test_a_setup_script_that_exits_its_process_fails_the_run(tmp_path: Path, host: bool) -> None:
    doc = tmp_path / "doc.md"
    flag = "setup-script host" if host else "setup-script"
    doc.write_text(f"```python {flag}\nimport os\nos._exit(0)\n```\n\n## user\n\n> hi\n")
    args = [DOMARKX, "run", str(doc), *(["--trust"] if host else [])]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done
    [error] = lines_with_errors(done.stderr)
    assert error.startswith(f"{doc}:"), error
    listed = subprocess.run([DOMARKX, "instances", "ls", "--json"], capture_output=True, text=True, check=True)
    assert json.loads(listed.stdout) == []
    doctor = subprocess.run([DOMARKX, "doctor", "--json"], capture_output=True, text=True, check=False)
    assert json.loads(doctor.stdout)["leftovers"] == []


def test_revoke_by_the_key_trust_list_shows(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(UNCONFINED)
    assert cli("trust", str(doc)).code == 0
    listed = cli("trust", "--list")
    assert listed.code == 0 and str(doc.resolve()) in listed.out
    key = listed.out.splitlines()[1].split()[0]
    assert cli("trust", "--revoke", "abc").code == 2  # too short to be a key: nothing matches
    assert cli("trust", "--revoke", key).code == 0
    assert json.loads(cli("trust", "--list", "--json").out) == []
    assert cli("run", str(doc), "-q").code == 2


def test_a_damaged_trust_record_trusts_nothing(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(UNCONFINED)
    assert cli("trust", str(doc)).code == 0
    [record] = (Path(os.environ["DOMARKX_CONFIG"]) / "trusted").glob("*.json")
    record.write_text("{not json")
    assert cli("trust", "--list", "--json").out.strip() == "[]"
    assert cli("run", str(doc), "-q").code == 2
    assert cli("trust", str(doc)).code == 0  # trusting again repairs it
    assert cli("run", str(doc), "-q").code == 0
