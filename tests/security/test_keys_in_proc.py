"""An unconfined command cannot read the user's keys from domarkx's ``/proc/<pid>/environ``.

Deleting a variable from ``os.environ`` leaves it in the block ``/proc`` shows, so
domarkx starts itself again without key variables and hands them over in memory.
Through the installed ``domarkx`` (the in-process CLI of other tests never
starts again): a ``sandbox: none`` command walks up to the domarkx process and
counts what its environment block holds; a marker variable that is no key is
there (the walk reads what it claims), the keys are not. The key still works:
the model server receives it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import FAKE_KEY, FakeOpenAI, text

DOMARKX = str(Path(sys.executable).parent / "domarkx")
AWS_KEY = "aws-proc-test-5e1f09"
UNCONFINED = """\
```workspace-config
resources:
  - type: local_shell
    sandbox: none
```

## user

> hello
"""
WALK = (
    'p=$PPID; for _ in 1 2 3 4 5; do if tr "\\0" " " < /proc/$p/cmdline | grep -q "bin/domarkx[ ]exec"; then '
    'tr "\\0" "\\n" < /proc/$p/environ | grep -c -e {keys} -e marker-in-environ; exit; fi; '
    "p=$(cut -d' ' -f4 /proc/$p/stat); done; echo not-found"
)


def domarkx(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOMARKX, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/<pid>/environ is Linux's")
def test_keys_are_not_in_the_environment_block_a_command_can_read(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(UNCONFINED)
    env = {**os.environ, "DOMARKX_TEST_MARKER": "marker-in-environ"}
    made = domarkx("run", str(doc), "-q", "--trust", env=env)
    assert made.returncode == 0, made.stderr
    instance = made.stdout.strip()
    keyed = {**env, "OPENAI_API_KEY": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": AWS_KEY}

    walked = domarkx("exec", instance, "--", WALK.format(keys=f"{FAKE_KEY} -e {AWS_KEY}"), env=keyed)
    assert walked.returncode in (0, 1), walked.stderr
    assert walked.stdout.strip() == "1", walked.stdout  # the marker only: no key

    fake_openai.queue(text("the key still works"))
    sent = domarkx(
        "send", instance, "hi", "-q", "--model", "openai:m", env={**keyed, "OPENAI_BASE_URL": fake_openai.base_url}
    )
    assert sent.returncode == 0, sent.stderr
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"
