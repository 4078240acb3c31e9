"""`domarkx ui` end to end: a real Chromium against the real server process, and a model server on 127.0.0.1.

Screenshots of the main pages go to ``$DOMARKX_UI_SHOTS`` (``docs/screenshots.sh``
sets it to ``docs/img``), else to a temporary directory: they are taken either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_openai import FAKE_KEY, FakeOpenAI, calls, text

from .conftest import PYTHON_DOC, Running, make_instance, start_ui, stop_ui

"""Whether the turn loop asks its observer before each call (the loop lane's TurnObserver)."""


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def ui(module_home: Path, model: FakeOpenAI) -> Iterator[tuple[Running, str]]:
    instance = make_instance(module_home, name="demo", tag="demo")
    env = {"OPENAI_BASE_URL": model.base_url, "OPENAI_API_KEY": FAKE_KEY}
    running = start_ui(module_home, env=env)
    yield running, instance
    stop_ui(running)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = Path(os.environ.get("DOMARKX_UI_SHOTS") or tmp_path_factory.mktemp("shots"))
    target.mkdir(parents=True, exist_ok=True)
    return target


def login(page: Any, running: Running) -> list[str]:
    """Open the printed address; every URL the page then requests is recorded."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(running.url)
    page.wait_for_selector("#instances tbody tr")
    assert page.url == running.base + "/", "the token stays in the address bar"
    return requested


def open_instance(page: Any, instance: str) -> None:
    page.goto(page.url.split("#")[0] + f"#/i/{instance}")
    page.wait_for_selector("#messages li")


def test_overview_lists_sessions_and_the_tree(page: Any, ui: tuple[Running, str]) -> None:
    running, instance = ui
    login(page, running)
    assert page.locator("#instances tbody a", has_text="demo").count() == 1
    assert page.locator(f'#fork-tree a.node[data-id="{instance}"]').count() == 1
    page.fill("#search", "no-such-thing")
    assert page.locator("#instances tbody tr").count() == 0
    page.fill("#search", "demo")
    assert page.locator("#instances tbody tr").count() >= 1


def test_timeline_renders_a_strangers_text_inert(page: Any, ui: tuple[Running, str]) -> None:
    running, instance = ui
    requested = login(page, running)
    open_instance(page, instance)
    hostile = page.locator("#m-3")
    assert "<script>window.pwned = 1</script>" in hostile.inner_text()
    assert hostile.locator("script, img, a[href^='javascript']").count() == 0
    assert page.evaluate("window.pwned") is None
    assert page.locator("#m-1 .md strong").inner_text() == "bold"
    assert all(url.startswith(running.base) for url in requested), requested


def test_expand_a_tool_call(page: Any, ui: tuple[Running, str], shots: Path) -> None:
    running, instance = ui
    login(page, running)
    open_instance(page, instance)
    call = page.locator('details.call[data-call="call_plan"]')
    assert not call.locator(".args").is_visible()
    call.locator("summary").click()
    assert '"path": "plan.md"' in call.locator(".args").inner_text()
    assert call.locator(".result").inner_text().strip() == "wrote 17 bytes to plan.md"
    assert page.locator("#m-5").count() == 0, "the tool result sits in its call, not as a message of its own"
    page.locator("#m-4").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "ui-timeline.png"))


@pytest.fixture(scope="module")
def calc(module_home: Path, ui: tuple[Running, str]) -> str:
    """An instance with a python resource: its versions hold files and variables."""
    return make_instance(module_home, PYTHON_DOC, name="calc")


def test_diff_and_files_at_a_message(page: Any, ui: tuple[Running, str], calc: str, shots: Path) -> None:
    running, _ = ui
    login(page, running)
    open_instance(page, calc)
    page.locator("#m-3 .diff-button").click()
    diff = page.locator("#diff")
    diff.get_by_text("result.txt", exact=True).wait_for()
    shown = diff.inner_text()
    assert "+forty-two" in shown and "41 (int" in shown and "42 (int" in shown
    assert diff.locator("details.change.added", has_text="names").count() == 1
    page.screenshot(path=str(shots / "ui-diff.png"))
    page.locator("#m-1 .files-button").click()
    page.locator("#files").get_by_text("result.txt", exact=True).click()
    assert page.locator("#viewer pre").inner_text() == "forty-one\n"
    page.get_by_role("button", name="Files at head").click()
    page.locator("#panel h2", has_text="Files at head").wait_for()  # the panel at message 1 is gone
    page.locator("#files").get_by_text("result.txt", exact=True).click()
    page.locator("#viewer pre", has_text="forty-two").wait_for()
    page.screenshot(path=str(shots / "ui-files.png"))


def test_shell_files_in_folders(page: Any, ui: tuple[Running, str]) -> None:
    running, instance = ui
    login(page, running)
    open_instance(page, instance)
    page.locator("#m-2 .diff-button").click()
    page.locator("#diff").get_by_text("notes.txt", exact=True).wait_for()
    assert "+first line" in page.locator("#diff").inner_text()
    page.locator("#m-4 .files-button").click()
    page.locator("#files").get_by_text("plan.md").click()
    assert page.locator("#viewer pre").inner_text() == "1. notes\n2. docs\n"
    page.locator("#files").get_by_text("docs/").click()
    page.locator("#files").get_by_text("index.md").wait_for()


def fork_at(page: Any, index: int, name: str) -> None:
    page.locator(f"#m-{index} .fork-button").click()
    page.fill("#confirm-name", name)
    page.click("#confirm-ok")
    page.locator(".instance-head h1", has_text=name).wait_for()


def test_fork_at_a_message(page: Any, ui: tuple[Running, str], shots: Path) -> None:
    running, instance = ui
    login(page, running)
    open_instance(page, instance)
    fork_at(page, 3, "branch")
    assert page.locator("#messages li").count() == 4  # messages 0..3
    page.goto(running.base + "/#/")
    page.locator("#instances tbody a", has_text="branch").wait_for()
    page.screenshot(path=str(shots / "ui-overview.png"))


def test_a_fork_appears_in_the_tree_under_its_parent(page: Any, ui: tuple[Running, str], shots: Path) -> None:
    running, instance = ui
    login(page, running)
    open_instance(page, instance)
    fork_at(page, 6, "twig")
    assert page.locator("#parent").get_attribute("href") == f"#/i/{instance}/m/6"
    page.goto(running.base + "/#/")
    page.locator("#fork-tree a.node", has_text="twig").wait_for()
    assert page.locator("#fork-tree text.at", has_text="@6").count() == 1
    page.screenshot(path=str(shots / "ui-overview.png"))


def test_rewind_keeps_the_tail_as_a_hidden_fork(page: Any, module_home: Path, ui: tuple[Running, str]) -> None:
    running, _ = ui
    target = make_instance(module_home, name="rewound")
    login(page, running)
    open_instance(page, target)
    page.locator("#m-3 .rewind-button").click()
    page.click("#confirm-ok")
    page.locator("#total", has_text="4").wait_for()  # (wait_for_function needs eval, which the CSP forbids)
    assert page.locator("#messages li").count() == 4
    page.goto(running.base + "/#/?hidden=1")
    page.locator("#instances tr.hidden-row").first.wait_for()


def test_send_streams_the_reply(page: Any, ui: tuple[Running, str], model: FakeOpenAI) -> None:
    running, instance = ui
    reply = "Hello from the scripted model, word by word."
    model.queue(text(reply))
    login(page, running)
    open_instance(page, instance)
    page.fill("#message", "Say hello.")
    page.click("#send")
    page.locator("#messages li.role-assistant .md", has_text=reply).wait_for()
    assert int(page.locator("#live").get_attribute("data-deltas") or 0) > 1, "the reply arrived in pieces"
    assert model.requests[-1].body["messages"][-1]["content"] == "Say hello."
    assert page.locator("#messages li.role-user").last.inner_text().endswith("Say hello.")


def test_approve_a_tool_call_while_the_reply_streams(
    page: Any, ui: tuple[Running, str], model: FakeOpenAI, shots: Path
) -> None:
    running, instance = ui
    model.queue(
        calls(("run_command", {"command": "echo approved > approved.txt"}), content="Let me write it."),
        text("Done: approved.txt exists."),
    )
    login(page, running)
    open_instance(page, instance)
    page.check("#approve")
    page.fill("#message", "Write approved.txt.")
    page.click("#send")
    page.locator("#approve-yes").wait_for()
    assert "Let me write it." in page.locator("#live-turn").inner_text(), "text shown while the turn waits"
    page.screenshot(path=str(shots / "ui-approval.png"))
    page.click("#approve-yes")
    page.locator("#messages li.role-assistant .md", has_text="approved.txt exists").wait_for()
    call = page.locator("#messages details.call", has_text="run_command").last
    call.locator("summary").click()
    assert "echo approved" in call.locator(".args").inner_text()
    assert "declined" not in call.locator(".result").inner_text()


PENDING = """\
```session-config
{"model": "openai:fake-model"}
```

## user

> Is anyone there?
"""


def test_answer_a_pending_message(page: Any, module_home: Path, ui: tuple[Running, str], model: FakeOpenAI) -> None:
    running, _ = ui
    pending = make_instance(module_home, PENDING, name="pending")
    model.queue(text("Yes, here I am."))
    login(page, running)
    open_instance(page, pending)
    page.click("#answer")
    page.locator("#messages li.role-assistant .md", has_text="Yes, here I am.").wait_for()
    assert page.locator("#answer").is_hidden()
    assert model.requests[-1].body["messages"][-1]["content"] == "Is anyone there?"


def test_export_downloads_the_markdown(page: Any, ui: tuple[Running, str]) -> None:
    running, instance = ui
    login(page, running)
    open_instance(page, instance)
    with page.expect_download() as download:
        page.click("#export")
    saved = Path(download.value.path())
    assert download.value.suggested_filename == "demo.md"
    exported = saved.read_text()
    assert exported.startswith("---\n") and "> Now append a line." in exported
    with page.expect_download() as partial:
        page.locator("#m-3 a.button", has_text="Export").click()
    assert partial.value.suggested_filename == "demo-at-3.md"
    assert "Now append a line." not in Path(partial.value.path()).read_text()


def test_read_only_page_offers_no_changes(page: Any, module_home: Path, ui: tuple[Running, str]) -> None:
    _, instance = ui
    running = start_ui(module_home, "--read-only")
    try:
        login(page, running)
        assert page.locator("#mode").is_visible()
        open_instance(page, instance)
        assert page.locator("#message, .fork-button, .rewind-button").count() == 0
        assert page.locator(".diff-button").count() > 0
    finally:
        stop_ui(running)
