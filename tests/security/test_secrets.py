"""API keys never reach the store, an export or a log, through a whole session with tool calls.

The session runs through the CLI against the fake OpenAI-compatible server with
distinctive keys in the environment; the model makes its tools print their
environment, write files and fail. Then every byte under ``DOMARKX_HOME`` is
searched — the SQLite files, the blobs, the resources, and every git object
decompressed — along with the export, a committed snapshot's export and
``domarkx log --json``. Positive controls prove the search reads what it claims.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import zlib
from pathlib import Path

import pytest

from fake_openai import FAKE_KEY, FakeOpenAI, calls, error, text

ANTHROPIC_KEY = "sk-ant-secrets-test-5c1e77aa90"
AWS_KEY = "aws-secrets-test-3f8e1d2c"
KEYS = [FAKE_KEY, ANTHROPIC_KEY, AWS_KEY]

DOC = """\
```session-config
{"model": "openai:fake-model"}
```

```yaml workspace-config
resources:
  - type: local_shell
    name: sh
  - type: python
    name: py
```

## user

> Look around.
"""


def readable_bytes(home: Path) -> dict[str, bytes]:
    """Every file under ``home`` as stored, plus git objects decompressed, by a label."""
    found: dict[str, bytes] = {}
    for path in sorted(p for p in home.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        found[str(path)] = data
        if "objects" in path.parts:
            with contextlib.suppress(zlib.error):  # not every file there is a loose object
                found[f"{path} (inflated)"] = zlib.decompress(data)
    for git_dir in (p for p in home.rglob("*.git") if p.is_dir()):
        done = subprocess.run(
            ["git", "--git-dir", str(git_dir), "cat-file", "--batch-all-objects", "--batch"],
            capture_output=True,
            check=True,
        )
        found[f"{git_dir} (every object)"] = done.stdout
    return found


def test_keys_appear_in_no_store_file_export_or_log(
    cli, tmp_path: Path, openai_env: FakeOpenAI, domarkx_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_KEY)
    doc = tmp_path / "session.md"
    doc.write_text(DOC)
    openai_env.queue(
        calls(
            ("sh__run_command", {"command": "env; echo shell-ran-here"}),
            ("py__execute_python", {"code": "import os; print(dict(os.environ)); print('kernel-ran-here')"}),
            content="Let me look.",
        ),
        calls(
            ("sh__write_file", {"path": "notes.txt", "content": "written-by-the-model\n"}),
            ("sh__read_file", {"path": "../../../.."}),
        ),
        text("Done looking."),
        error(401, f"Incorrect API key provided: {FAKE_KEY}"),  # a server that echoes the key back
    )

    run = cli("run", str(doc), "-m", "go")
    assert run.code == 0, run
    instance = run.out.strip().splitlines()[-1]
    failed = cli("send", instance, "once more")
    assert failed.code == 1
    committed = cli("commit", instance)
    assert committed.code == 0, committed
    snapshot = committed.out.strip().split()[0]

    outputs = {
        "run output": run.out + run.err,
        "failed send": failed.out + failed.err,
        "export": cli("export", instance).out,
        "committed export": cli("export", snapshot).out,
        "log": cli("log", instance, "--json").out,
        "log text": cli("log", instance).out,
    }
    stored = readable_bytes(domarkx_home)

    # positive controls: the search does read tool output, files and git objects
    assert "shell-ran-here" in outputs["export"] and "kernel-ran-here" in outputs["export"]
    assert any(b"shell-ran-here" in data for data in stored.values())
    assert any(b"written-by-the-model" in data and "inflated" in label for label, data in stored.items())
    assert json.loads(outputs["log"])[-1]["role"] == "user"  # the failed turn kept its message
    assert "***" in outputs["failed send"]  # the echoed key was blanked out, not just absent

    for key in KEYS:
        assert not [label for label, data in stored.items() if key.encode() in data], key
        assert not [label for label, value in outputs.items() if key in value], key
