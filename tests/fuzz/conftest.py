"""Fuzz budget (``--run-slow`` or ``DOMARKX_FUZZ_EXAMPLES``) and the count of inputs run."""

from __future__ import annotations

import fuzz_budget
import pytest


def pytest_configure(config: pytest.Config) -> None:
    fuzz_budget.configure(slow=bool(config.getoption("--run-slow", default=False)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts = fuzz_budget.COUNTS
    if not counts:
        return
    terminalreporter.section("fuzz inputs run")
    targets: dict[str, int] = {}
    for key, n in sorted(counts.items()):
        terminalreporter.write_line(f"{key}: {n}")
        target = key.split(":", 1)[0]
        targets[target] = targets.get(target, 0) + n
    total = sum(targets.values())
    per_target = ", ".join(f"{t} {n}" for t, n in targets.items())
    terminalreporter.write_line(f"total: {total} inputs ({per_target})")
