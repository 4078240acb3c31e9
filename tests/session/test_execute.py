"""session.execute through its API: interrupts keep what ran, hostile arguments, the summary line, cell failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from domarkx.data.store import Store
from domarkx.session.execute import (
    Observer,
    Origin,
    Report,
    RunOptions,
    Step,
    StepResult,
    first_unlinked,
    resume,
)
from domarkx.session.instance import InstanceManager
from domarkx.session.outofband import exec_code
from domarkx.workspace.plugins.python import cell_failure

DOC = """\
## assistant

```bash
echo one > a.txt
```

## assistant

```bash
echo two > b.txt
```

```bash
echo three > c.txt
```
"""


class Interrupting(Observer):
    """Presses Ctrl-C as the given step of the given message is about to run."""

    def __init__(self, message: int, block: int) -> None:
        self.at = (message, block)

    def step(self, index: int, step: Step, origin: Origin) -> None:
        if (index, step.index) == self.at:
            raise KeyboardInterrupt


def create(home: Path, text: str = DOC, options: RunOptions | None = None) -> InstanceManager:
    instances = InstanceManager(Store(home))
    snapshot = instances.snapshots.build(text.encode(), path="doc.md", base_dir=home)
    instances.snapshots.save(snapshot)
    instances.create(snapshot, name="exe", options=options)
    return instances


def listing(instances: InstanceManager) -> list[str]:
    outcome = exec_code(instances, "exe", "ls").outcome
    return str(outcome.output["stdout"]).split()


def test_an_interrupt_keeps_what_ran_and_resume_finishes(domarkx_home: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        create(domarkx_home, options=RunOptions(observer=Interrupting(1, 1)))
    instances = InstanceManager(Store(domarkx_home))
    instance = instances.get("exe")
    assert first_unlinked(instance) == 1
    assert listing(instances) == ["a.txt", "b.txt"]  # the first block of message 1 ran and is kept
    assert instances.store.build_cache.count() == 1  # only the message that completed
    report = resume(instances, "exe", RunOptions())
    assert [run.index for run in report.messages] == [1] and report.summary() is None
    assert listing(instances) == ["a.txt", "b.txt", "c.txt"]
    assert first_unlinked(instances.get("exe")) is None


def test_a_recorded_call_with_bad_arguments_fails_and_its_claimed_success_is_replaced(domarkx_home: Path) -> None:
    doc = (
        '## assistant\n\n```json tool-call id=c1 name=run_command\n{"command": 5}\n```\n\n'
        "## tool\n\n```text tool-result id=c1\nall good\n```\n"
    )
    seen: list[StepResult] = []

    class Watch(Observer):
        def result(self, index: int, result: StepResult) -> None:
            seen.append(result)

    instances = create(domarkx_home, doc, RunOptions(observer=Watch()))
    assert [(r.ok, r.failure) for r in seen] == [(False, "run_command: argument 'command' must be of type string")]
    tool = instances.get("exe").messages[1]
    assert not tool.tool_ok and tool.content.startswith("error: run_command: argument 'command'")
    assert instances.store.build_cache.count() == 0


def test_the_summary_names_each_failure() -> None:
    def failed(label: str, failure: str) -> StepResult:
        return StepResult(Step("block", 0, label, "t", {}), False, "", failure)

    from domarkx.session.execute import MessageRun

    report = Report(
        "i",
        [
            MessageRun(3, "p", "v", [failed("bash", "exit 1")]),
            MessageRun(4, "p", None, [failed("python", "ZeroDivisionError")]),
        ],
        stopped=4,
        unreached=3,
    )
    assert report.summary() == (
        "2 of 5 blocks failed: message 3 (bash, exit 1), message 4 (python, ZeroDivisionError);"
        " stopped there, 3 not run"
    )
    assert Report("i").summary() is None


@pytest.mark.parametrize(
    ("text", "failure"),
    [
        ("[stdout]\n42", None),
        ("(no output)", None),
        ("[error]\n---\nZeroDivisionError  Traceback\n\nZeroDivisionError: division by zero", "ZeroDivisionError"),
        (
            "[stdout]\nx\n[error]\nKeyboardInterrupt: \n[note]\nthe cell timed out after 3 s and was interrupted",
            "timed out",
        ),
        ("[error]\nmodule.CustomError\n[note]\nrestored 2 variables", "module.CustomError"),
        ("[stdout]\nthe cell timed out after a while, said the cell", None),
    ],
)
def test_python_cell_failures_are_read_from_the_formatted_output(text: str, failure: str | None) -> None:
    assert cell_failure(text) == failure
