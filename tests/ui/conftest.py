"""Fixtures of the UI tests: a store with sessions in it, `domarkx ui` as a real process, a real Chromium.

The browser is Debian's ``chromium`` driven by Playwright's Python package over
the DevTools protocol (no ``playwright install``: no browser is downloaded).
``DOMARKX_CHROMIUM`` names another binary; ``.ci/browser.sh`` installs it. With
``CI`` set a missing browser fails the browser tests; otherwise they skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from domarkx.data.store import Store
from domarkx.session.instance import InstanceManager

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 30.0

DOC = """\
---
title: ui demo
---

```session-config
{"model": "openai:fake-model", "timeout": 30}
```

```workspace-config
resources:
  - type: local_shell
    name: shell
```

## system

> You work in a shell sandbox.

## user

> Make a notes file, and show me **bold** text.

## assistant

> Writing `notes.txt`:

```bash
printf 'first line\\nsecond line\\n' > notes.txt
mkdir -p docs && printf '# Docs\\n' > docs/index.md
```

## user

> Save a plan too. Also, a stranger wrote this: <script>window.pwned = 1</script>
> <img src=x onerror="window.pwned = 2"> [click me](javascript:window.pwned=3)
> ![tracker](https://tracker.example/pixel.png)

## assistant

> Saving the plan.

```json tool-call id=call_plan name=write_file
{"path": "plan.md", "content": "1. notes\\n2. docs\\n"}
```

## tool

```text tool-result id=call_plan
wrote 17 bytes to plan.md
```

## user

> Now append a line.

## assistant

> Appending.

```bash
printf 'third line\\n' >> notes.txt
cat notes.txt
```
"""


PYTHON_DOC = """\
---
title: numbers
---

```workspace-config
resources:
  - type: python
    name: py
```

## user

> Compute.

## assistant

```python
x = 41
with open("result.txt", "w") as out:
    out.write("forty-one\\n")
```

## user

> More.

## assistant

```python
x += 1
names = ["a", "b"]
with open("result.txt", "a") as out:
    out.write("forty-two\\n")
```
"""


@dataclass
class Running:
    """A `domarkx ui` process and the address it printed."""

    process: subprocess.Popen[str]
    url: str
    home: Path

    @property
    def base(self) -> str:
        return self.url.split("/?", 1)[0]

    @property
    def token(self) -> str:
        return self.url.rsplit("token=", 1)[1]

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])


def start_ui(home: Path, *args: str, env: dict[str, str] | None = None) -> Running:
    """Start `domarkx ui --port 0` on ``home`` as a real process; its first line of output is the address."""
    environment = {**os.environ, "DOMARKX_HOME": str(home), **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "domarkx", "ui", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("http://127.0.0.1:"):
        process.kill()
        _, err = process.communicate(timeout=START_TIMEOUT)
        raise AssertionError(f"domarkx ui did not start: {line!r} {err!r}")
    return Running(process, line, home)


def stop_ui(running: Running) -> None:
    running.process.terminate()
    try:
        running.process.communicate(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.communicate()


def make_instance(home: Path, document: str = DOC, *, name: str, tag: str | None = None) -> str:
    """Import ``document`` and run it offline in ``home``; the instance's id."""
    with Store(home) as store:
        instances = InstanceManager(store)
        snapshot = instances.snapshots.build(document.encode(), path=f"{name}.md", base_dir=home)
        instances.snapshots.save(snapshot, tags=[tag] if tag else [])
        return instances.create(snapshot, name=name).id


@pytest.fixture(scope="module")
def module_home() -> Iterator[Path]:
    """A store shared by one module's tests (the autouse per-test home is not the server's)."""
    path = Path(tempfile.mkdtemp(prefix="domarkx-ui-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def chromium_path() -> str | None:
    return os.environ.get("DOMARKX_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium, shared by the session's tests (each test opens its own context)."""
    path = chromium_path()
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[dev]')"
    if path is None:
        missing = "no chromium: run .ci/browser.sh (apt-get install chromium)"
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need a browser in CI: {missing}")
        pytest.skip(missing)
    with sync_playwright() as playwright:  # it gives the browser a fresh --user-data-dir of its own
        launched = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; JavaScript errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.set_default_timeout(15_000)
    yield opened
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


Factory = Callable[..., Running]
