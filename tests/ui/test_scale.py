"""A 10,000-message instance in the browser: the timeline reads one page, and the first screen's time is reported.

The time comes from the browser's own clock: the page sets the performance mark
``domarkx:timeline-ready`` once the first page of messages is in the document,
and its ``startTime`` counts from the start of the navigation. It is printed
(run with ``-s``) and recorded as a test property beside a 10-message
instance's, never asserted: a loaded machine must not fail the suite.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Running, make_instance, start_ui, stop_ui

LONG = 10_000
SHORT = 10
PAGE = 50


def document(messages: int) -> str:
    parts = ["---\ntitle: long session\n---\n"]
    for i in range(messages):
        role = "user" if i % 2 == 0 else "assistant"
        parts.append(f"## {role}\n\n> Message {i}: *some* `markdown` with a [link](https://example.org/{i}).\n")
    return "\n".join(parts)


@pytest.fixture(scope="module")
def served(module_home: Path) -> Iterator[tuple[Running, str, str]]:
    long = make_instance(module_home, document(LONG), name="long")
    short = make_instance(module_home, document(SHORT), name="short")
    running = start_ui(module_home)
    yield running, long, short
    stop_ui(running)


def first_screen(page: Any, running: Running, instance: str) -> float:
    """Milliseconds from the start of navigation to the first page of messages on screen."""
    page.goto(f"{running.base}/?r={instance[:6]}#/i/{instance}")
    page.locator("#messages li").last.wait_for()
    return browser_mark(page, "domarkx:timeline-ready")


def browser_mark(page: Any, name: str) -> float:
    """A performance mark's time, polled: the page's CSP forbids the eval that ``wait_for_function`` needs."""
    for _ in range(200):
        found = page.evaluate("(name) => performance.getEntriesByName(name).map((e) => e.startTime)", name)
        if found:
            return float(found[0])
        page.wait_for_timeout(25)
    raise AssertionError(f"the page never set the mark {name}")


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def test_a_long_instance_opens_on_one_page(
    page: Any, served: tuple[Running, str, str], record_property: Callable[[str, object], None]
) -> None:
    running, long, short = served
    page.goto(running.url)
    page.wait_for_selector("#instances tbody tr")
    long_ms = median_of(3, lambda: first_screen(page, running, long))
    assert page.locator("#messages li").count() == PAGE
    assert page.locator("#total").inner_text() == str(LONG)
    assert page.locator(f"#m-{LONG - 1}").count() == 1, "a conversation opens at its end"
    short_ms = median_of(3, lambda: first_screen(page, running, short))
    record_property("first_screen_ms_10000", round(long_ms))
    record_property("first_screen_ms_10", round(short_ms))
    print(
        f"\nfirst screen: {long_ms:.0f} ms at {LONG} messages, {short_ms:.0f} ms at {SHORT} ({long_ms / short_ms:.2f}×)"
    )

    first_screen(page, running, long)
    page.click("#load-earlier")
    page.locator(f"#m-{LONG - PAGE - 1}").wait_for()
    assert page.locator("#messages li").count() == 2 * PAGE
    page.fill("#jump", "5000")
    page.press("#jump", "Enter")
    page.locator("#m-5000").wait_for()
    assert page.locator("#messages li").count() == PAGE
    assert "Message 5000" in page.locator("#m-5000").inner_text()
