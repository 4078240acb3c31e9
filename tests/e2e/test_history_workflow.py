"""Issue 13 end to end, on a 31-message document (messages 1..30 are assistant messages) with shell, python and sqlite:
edit message k and re-run with the build cache; `diff` between adjacent messages; `verify` of the export and of
tampered records; `log --stat`; `edit`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

LAST = 30
KINDS = ("shell", "python", "sql")


def kind(i: int) -> str:
    return KINDS[i % 3]


def code(i: int, edited: bool = False) -> str:
    tag = f"edited{i}" if edited else f"m{i}"
    if kind(i) == "shell":
        return f"```bash\necho {tag} >> log.txt; wc -l < log.txt\n```"
    if kind(i) == "python":
        step = 1000 if edited else i
        return f"```python\nv = globals().get('v', 0) + {step}\nprint(v)\n```"
    return (
        "```sql\nCREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, note TEXT);"
        f" INSERT INTO t VALUES ({i}, '{tag}');\n```"
    )


def document(edit: int | None = None) -> str:
    parts = [
        "---\ntitle: thirty\n---\n",
        "```workspace-config\nresources:\n  - type: local_shell\n    name: sh\n"
        "  - type: python\n    name: py\n  - type: sqlite\n    name: db\n```\n",
        "## user\n\n> build it step by step\n",
    ]
    parts += [f"## assistant\n\n> step {i}\n\n{code(i, edited=i == edit)}\n" for i in range(1, LAST + 1)]
    return "\n".join(parts)


def run(cli, path: Path, *args: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    result = cli("run", str(path), "--json", *args)
    assert result.code == 0, result
    report: dict = json.loads(result.out)  # type: ignore[type-arg]
    log = json.loads(cli("log", report["instance"], "--json").out)
    report["versions"] = [entry["workspace_version"] for entry in log]
    return report


@dataclass(frozen=True)
class Shared:
    """One home for the whole module, where the document ran once (a full run takes a while)."""

    home: Path
    doc: Path
    first: dict  # type: ignore[type-arg]

    @property
    def instance(self) -> str:
        return str(self.first["instance"])


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    folder = tmp_path_factory.mktemp("thirty")
    doc = folder / "doc.md"
    doc.write_text(document())
    env = {**os.environ, "DOMARKX_HOME": str(folder / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "domarkx", "run", str(doc), "--json"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return Shared(folder / "home", doc, json.loads(done.stdout))


@pytest.fixture(autouse=True)
def in_shared_home(domarkx_home: Path, shared: Shared, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMARKX_HOME", str(shared.home))


def test_edit_message_k_rerun_uses_the_cache_and_equals_no_cache(cli, shared: Shared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert shared.first["executed"] == list(range(1, LAST + 1))
    for k in (1, 15, LAST):
        edited = tmp_path / f"edit{k}.md"
        edited.write_text(document(edit=k))
        cached = run(cli, edited)
        assert cached["cached"] == list(range(1, k)), k
        assert cached["executed"] == list(range(k, LAST + 1)), k
        fresh = run(cli, edited, "--no-cache")
        assert fresh["cached"] == []
        assert cached["versions"] == fresh["versions"], k  # the workspace at every message
        shown = [cli("exec", r["instance"], "--", "cat log.txt").out for r in (cached, fresh)]
        assert shown[0] == shown[1] and (f"edited{k}" in shown[0]) == (kind(k) == "shell")


def expected_change(i: int) -> tuple[str, list[tuple[str, str, str]]]:
    """(resource, [(kind, name, status)]) that assistant message i's block must change."""
    if kind(i) == "shell":
        return "sh", [("file", "log.txt", "added" if i == 3 else "modified")]
    if kind(i) == "python":
        return "py", [("variable", "v", "added" if i == 1 else "modified")]
    schema = [("schema", "t", "added")] if i == 2 else []
    return "db", [*schema, ("row", f"t:{i}", "added")]


def test_diff_between_adjacent_messages_and_log_stat_match_what_each_block_did(cli, shared: Shared) -> None:  # type: ignore[no-untyped-def]
    instance = shared.instance
    for i in range(1, LAST + 1):
        result = cli("diff", f"{instance}@{i - 1}", f"{instance}@{i}", "--json")
        assert result.code == 0, result
        changed = [r for r in json.loads(result.out)["resources"] if r["changed"]]
        resource, changes = expected_change(i)
        shown = [r for r in changed if r["changes"] or r["notes"]]
        assert [r["resource"] for r in shown] == [resource], (i, changed)
        assert [(c["kind"], c["name"], c["status"]) for c in shown[0]["changes"]] == changes, i
    patch = cli("diff", f"{instance}@2", f"{instance}@3").out
    assert "+++ b/log.txt" in patch and "+m3" in patch
    stat = cli("diff", f"{instance}@0", instance, "--stat", "--resource", "sh").out
    assert stat.splitlines()[0] == "sh (local_shell)" and re.search(r"log\.txt \| 10 \++$", stat, re.M)
    assert " 1 change in 1 resource, 10 insertions(+), 0 deletions(-)" in stat
    entries = json.loads(cli("log", instance, "--stat", "--json").out)
    for i in range(1, LAST + 1):
        resource, changes = expected_change(i)
        shown = [r for r in entries[i]["stat"] if r["changes"] or r["notes"]]
        assert [r["resource"] for r in shown] == [resource]
    text = cli("log", instance, "--stat").out
    assert "\n     sh (local_shell)\n      log.txt | 1 +\n" in text


def test_verify_passes_on_the_export_and_fails_on_tampering(cli, shared: Shared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    instance = shared.instance
    exported = cli("export", instance).out
    (tmp_path / "export.md").write_text(exported)
    passed = cli("verify", str(tmp_path / "export.md"), "--json")
    assert passed.code == 0, passed
    report = json.loads(passed.out)
    assert report["ok"] and report["rerun"] == LAST
    assert {c["status"] for c in report["checks"]} == {"match"}

    # a recorded output: message 15's shell block printed 5 (the 5th line of log.txt)
    assert "```text output\n5\n```" in exported
    (tmp_path / "output.md").write_text(exported.replace("```text output\n5\n```", "```text output\n6\n```"))
    failed = cli("verify", str(tmp_path / "output.md"))
    assert failed.code == 1
    assert "error: message 15 diverged from the record: output of block 0 (bash)" in failed.err
    assert "    -6\n    +5\n" in failed.out and "✓ message 14" in failed.out and "message 16" not in failed.out

    # a file in a version: message 12's recorded version replaced by one whose log.txt holds a forged line
    fork = cli("fork", instance, "--at", "12", "-q").out.strip()
    assert cli("exec", fork, "--", "echo forged >> log.txt").code == 0
    forged = json.loads(cli("instances", "inspect", fork, "--json").out)["head_version"]
    recorded = json.loads(cli("log", instance, "--json").out)[12]["workspace_version"]
    (tmp_path / "file.md").write_text(exported.replace(recorded, forged, 1))
    tampered = cli("verify", str(tmp_path / "file.md"), "--json")
    assert tampered.code == 1
    first = json.loads(tampered.out)["first_divergence"]
    assert (first["message"], first["what"], first["status"]) == (12, "workspace", "diverged")
    assert "== sh (local_shell)" in first["detail"] and "-forged" in first["detail"]


def test_edit_a_message_and_go_on_from_there(cli, shared: Shared) -> None:  # type: ignore[no-untyped-def]
    instance = shared.instance
    result = cli("edit", instance, "--at", "29", "--message", code(29, edited=True), "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["executed"] == [29, 30] and report["cached"] == []
    assert report["parent"] == json.loads(cli("instances", "inspect", instance, "--json").out)["id"]
    text_only = cli("edit", instance, "--at", "20", "--message", f"> a better step 20\n\n{code(20)}", "--json")
    assert json.loads(text_only.out)["cached"] == list(range(20, LAST + 1))  # only prose changed: nothing runs
