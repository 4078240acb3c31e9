"""Showing an offline run as it happens (``run``, ``run --resume``, ``edit``), and how it ended.

Each step's output goes to stdout under a header saying where it came from
(``── message 3 · bash ──``), as a notebook runner shows cells; what is not
output (replaced tool results, notes) goes to stderr as ``·`` lines. A run
with failed blocks ends with one summary line and exit code 1, after the
instance id, so scripts still find the instance.
"""

from __future__ import annotations

from typing import Any

import click

from domarkx.cli._session import progress
from domarkx.errors import DomarkxError
from domarkx.session._reply import printable
from domarkx.session.execute import MessageRun, Observer, Origin, Report, Step, StepResult

_ORIGINS = {"ran": "", "cached": " · CACHED", "recorded": " · recorded result", "replayed": " · replayed"}


class RunFailed(DomarkxError):
    """Blocks of the run failed; the instance keeps what ran (exit code 1)."""


class RunView(Observer):
    """Prints each step under its header and its output as it streams; collects the report."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.column = 0
        self.streamed = False
        self.report: Report | None = None

    def step(self, index: int, step: Step, origin: Origin) -> None:
        self.streamed = False
        if not self.quiet:
            self._end_line()
            click.secho(f"── message {index} · {printable(step.label)}{_ORIGINS[origin]} ──", dim=True)

    def output(self, chunk: str) -> None:
        if self.quiet or not chunk:
            return
        self.streamed = True
        self._echo(chunk)

    def result(self, index: int, result: StepResult) -> None:
        if self.quiet or self.streamed or result.silent:
            return
        self._echo(result.text)

    def message(self, run: MessageRun) -> None:
        if self.quiet:
            return
        self._end_line()
        for call_id in run.replaced:
            progress(f"message {run.index}: the recorded result of call {printable(call_id)} differed: replaced")
        for note in run.notes:
            progress(f"note: {printable(note)}")

    def finished(self, report: Report) -> None:
        self._end_line()
        self.report = report

    def interrupted(self, instance: str, index: int) -> None:
        self._end_line()
        progress(f"interrupted in message {index}: the instance keeps what ran;"
                 f" `domarkx run --resume {instance[:12]}` runs the rest")  # fmt: skip

    def _echo(self, text: str) -> None:
        click.echo(printable(text), nl=False)
        self.column = 0 if text.endswith("\n") else self.column + len(text)

    def _end_line(self) -> None:
        if self.column:
            click.echo()
            self.column = 0


def check(report: Report | None, instance: str | None) -> None:
    """Raise :class:`RunFailed` with the report's summary when blocks failed (``instance`` None: gone, ``--rm``)."""
    summary = report.summary() if report is not None else None
    if summary is None:
        return
    if instance is None:
        raise RunFailed(summary, hint="the instance was removed (--rm); run without --rm to keep what ran")
    name = instance[:12]
    hints = [f"the instance keeps what ran: `domarkx log {name}`"]
    if report is not None and report.stopped is not None:
        hints.append(f"`domarkx run --resume {name}` runs the rest; --keep-going runs past failures")
    raise RunFailed(summary, hint="\n".join(hints))


def report_json(report: Report | None) -> dict[str, Any]:
    """What ``run --json`` adds about the offline run."""
    if report is None:
        return {}
    return {
        "cached": [run.index for run in report.messages if run.cached],
        "executed": [run.index for run in report.messages if not run.cached and run.results],
        "failed": [{"message": index, "block": r.step.label, "failure": r.failure} for index, r in report.failures],
        "stopped": report.stopped,
        "replaced": [{"message": run.index, "call": call} for run in report.messages for call in run.replaced],
    }
