"""``domarkx diff``: the points it takes, its bad references, odd file names, --stat and --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DOC = """\
## user

> make files

## assistant

```bash
printf 'one\\ntwo\\n' > a.txt; printf '\\000\\001' > blob.bin
```

## assistant

```bash
printf 'one\\nTWO\\n' > a.txt; printf '\\000\\002\\003' > blob.bin
printf 'x' > "$(printf 'caf\\351.txt')"; printf 'y' > "$(printf 'new\\nline.txt')"
```
"""


@pytest.fixture
def instance(cli, tmp_path: Path) -> str:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    result = cli("run", str(doc), "-q", "--name", "files")
    assert result.code == 0, result
    return "files"


def test_a_patch_per_text_file_a_summary_per_binary_and_escaped_names(cli, instance: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("diff", f"{instance}@1", f"{instance}@2")
    assert result.code == 0, result
    out = result.out
    assert "== local_shell (local_shell)" in out
    assert "-two\n+TWO\n" in out
    assert " modified blob.bin" in out and "binary file, 2 → 3 bytes" in out
    assert " added    caf\\xe9.txt" in out and " added    new\\nline.txt" in out  # one line each, escaped
    stat = cli("diff", f"{instance}@1", f"{instance}@2", "--stat").out.splitlines()
    assert stat[0] == "local_shell (local_shell)"
    assert any(line.startswith(" a.txt") and line.endswith("| 2 +-") for line in stat)
    assert any(line.startswith(" blob.bin") and line.endswith("| Bin 2 → 3 bytes") for line in stat)
    assert stat[-1] == " 4 changes in 1 resource, 3 insertions(+), 1 deletion(-)"


def test_json_names_both_points_and_every_change(cli, instance: str) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(cli("diff", f"{instance}@0", instance, "--json").out)
    assert data["old"]["ref"] == f"{instance}@0" and data["new"]["ref"] == instance
    [resource] = data["resources"]
    assert {c["name"] for c in resource["changes"]} == {"a.txt", "blob.bin", "caf\\xe9.txt", "new\\nline.txt"}
    assert all("detail" in c for c in resource["changes"])
    assert all(
        "detail" not in c
        for c in json.loads(cli("diff", f"{instance}@0", instance, "--json", "--stat").out)["resources"][0]["changes"]
    )


def test_versions_and_committed_snapshots_are_points(cli, instance: str) -> None:  # type: ignore[no-untyped-def]
    version = json.loads(cli("log", instance, "--json").out)[1]["workspace_version"]
    assert cli("diff", version, f"{instance}@1").out == "no changes\n"
    assert cli("commit", instance, "-t", "files-done").code == 0
    assert cli("diff", "files-done", instance).out == "no changes\n"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("files@9", "files"), "files@9: no such message (the messages are 0..2)"),
        (("files@x", "files"), "files@x: no such message"),
        (("nobody@1", "files"), "no instance matches 'nobody'"),
        (("files@0", "files", "--resource", "db"), "no resource named 'db' in these versions"),
    ],
)
def test_bad_points_are_one_line_errors(cli, instance: str, args: tuple[str, ...], needle: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("diff", *args)
    assert result.code == 2 and result.err.startswith("error: ") and needle in result.err, result
    assert "Traceback" not in result.err


def test_an_imported_snapshot_has_no_workspace(cli, instance: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("import", str(tmp_path / "doc.md"), "-t", "plain")
    result = cli("diff", "plain", instance)
    assert result.code == 2 and "snapshot plain has no workspace" in result.err and "hint:" in result.err


def test_log_stat_shows_what_each_message_changed(cli, instance: str) -> None:  # type: ignore[no-untyped-def]
    lines = cli("log", instance, "--stat").out.splitlines()
    assert lines[0].startswith("0    user") and lines[1].startswith("1    assistant")  # a user message: no stat
    assert lines[2:5] == ["     local_shell (local_shell)", "      a.txt    | 2 ++", "      blob.bin | Bin 0 → 2 bytes"]


def test_one_instance_shows_what_exec_changed_since_the_last_message(cli, instance: str) -> None:  # type: ignore[no-untyped-def]
    assert cli("diff", instance).out == "no changes\n"
    assert cli("exec", instance, "--", "echo three >> a.txt").code == 0
    result = cli("diff", instance)
    assert result.code == 0 and "+three\n" in result.out, result
    data = json.loads(cli("diff", instance, "--json").out)
    assert data["old"]["ref"] == f"{instance}@conversation" and data["new"]["ref"] == instance


@pytest.mark.parametrize("ref", ["files@1", "nope"])
def test_one_argument_must_be_an_instance(cli, instance: str, ref: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("diff", ref)
    assert result.code == 2 and result.err.startswith("error: ") and "Traceback" not in result.err, result


UNNEEDED = ("pydantic", "domarkx.workspace.manager", "domarkx.data.models")
PROBE = f"""
import json, sys
from domarkx.cli import main
code = main(sys.argv[1:])
print(json.dumps(sorted(m for m in {UNNEEDED!r} if m in sys.modules)), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("args", [("diff", "files@1", "files@2"), ("log", "files", "--stat")], ids=" ".join)
def test_reading_versions_starts_without_pydantic(instance: str, domarkx_home: Path, args: tuple[str, ...]) -> None:
    """Comparing versions validates no model: pydantic, the largest import these could pay for, stays out."""
    env = {**os.environ, "DOMARKX_HOME": str(domarkx_home)}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert "+TWO" in done.stdout or "a.txt" in done.stdout, done.stdout
    assert json.loads(done.stderr.splitlines()[-1]) == [], f"{' '.join(args)} imported what it does not need"
