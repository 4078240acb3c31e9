"""``domarkx run``: snapshot → instance (like ``docker run``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from domarkx.cli._common import emit_json, json_option
from domarkx.cli._session import managers, progress, turn_options
from domarkx.errors import DomarkxError, UsageError

if TYPE_CHECKING:
    from domarkx.data.models import SessionInstance, SessionSnapshot
    from domarkx.session.execute import Report, RunOptions
    from domarkx.session.instance import InstanceManager
    from domarkx.session.manager import SessionManager, TurnResult


@click.command("run")
@click.argument("ref", metavar="REF|PATH", required=False)
@click.option("--name", metavar="NAME", help="Name the instance (usable wherever an id is).")
@click.option("--keep-going", is_flag=True, help="Run every block even after one failed (default: stop there).")
@click.option("--no-cache", is_flag=True, help="Execute every message, reusing no earlier execution.")
@click.option("--resume", metavar="INSTANCE", help="Run the blocks a stopped or interrupted run of INSTANCE left.")
@click.option("-m", "--message", metavar="TEXT", help="Then send this user message to the model.")
@turn_options
@json_option
@click.option("-q", "--quiet", is_flag=True, help="Print only the instance id.")
@click.option("--rm", "remove", is_flag=True, help="Remove the instance when the run ends (like `docker run --rm`).")
def run_cmd(
    ref: str | None,
    name: str | None,
    keep_going: bool,
    no_cache: bool,
    resume: str | None,
    message: str | None,
    model: str | None,
    max_steps: int | None,
    approve: bool | None,
    verbose: bool,
    as_json: bool,
    quiet: bool,
    remove: bool,
) -> None:
    """Create an instance of snapshot REF (or of the Markdown file PATH) and run it.

    The workspace is provisioned, the setup block runs, then the code blocks of
    the assistant messages run in order, offline, like re-running a notebook;
    each assistant message is linked to the workspace version after its blocks.
    Each block's output is headed by where it came from. Messages this store
    already executed from the same workspace version are reused, marked
    CACHED (like `docker build`). The run stops at the first failed block and
    exits 1 with a summary; the instance keeps what ran, and `--resume` runs
    the rest. A model is called only when asked: with -m, that message goes
    to it; with --model, a document that ends with a user message (such as
    `domarkx new chat`) gets its answer. The instance remembers --model for `send` and
    `chat`. The instance id is the last line printed; what to do next goes to
    stderr.

    \b
    Examples:
      domarkx run examples/hello.md
      domarkx run demo --name try1 -m "now add tests" --model openai:gpt-4o-mini
      domarkx new chat -o talk.md && domarkx run talk.md --model openai:gpt-4o-mini
      domarkx run --resume try1 --keep-going
      domarkx run --rm checks.md      # run the document's code, print its outputs, keep nothing
    """
    from domarkx.cli._execute import RunView, check
    from domarkx.session.execute import RunOptions
    from domarkx.session.manager import provider_for_snapshot

    if (ref is None) == (resume is None) or (resume is not None and (name is not None or remove)):
        raise UsageError(
            "give REF|PATH, or --resume INSTANCE (without --name or --rm)", hint="see `domarkx run --help`"
        )
    instances, sessions = managers()
    view = RunView(quiet=quiet or as_json)
    run_options = RunOptions(keep_going=keep_going, cache=not no_cache, observer=view)
    with instances.store:
        if resume is not None:
            instance, snapshot_id = _resumed(instances, resume, run_options)
        else:
            assert ref is not None
            snapshot = _snapshot(instances, ref, quiet=quiet or as_json)
            if message is not None or model is not None:
                provider_for_snapshot(snapshot, model).close()  # a wrong model or option: no instance is made
            progress_to = (lambda _: None) if quiet else progress
            instance = instances.create(snapshot, name=name, progress=progress_to, options=run_options)
            snapshot_id = snapshot.id
        stopped = view.report is not None and view.report.stopped is not None
        options = TurnOptions(model, approve, max_steps, verbose=verbose, quiet=quiet, text=not (quiet or as_json))
        try:
            result = None if stopped else _first_turn(sessions, instance, message, options)
        except (DomarkxError, KeyboardInterrupt):
            if not remove:
                _report(instance, snapshot_id, None, as_json=as_json, quiet=True)  # it exists and stays usable
            raise
        finally:
            if remove:
                instances.remove(instance.id, force=True)
    if as_json or not remove:
        _report(instance, snapshot_id, result, as_json=as_json, quiet=quiet, run=view.report)
    check(view.report, None if remove else instance.id)


def _resumed(instances: InstanceManager, ref: str, options: RunOptions) -> tuple[SessionInstance, str]:
    """``--resume``: run what a stopped run of the instance left; (the instance, its snapshot id)."""
    from domarkx.session.execute import resume

    report = resume(instances, ref, options)
    if not report.messages:
        progress("nothing to resume: every message ran")
    instance = instances.get(report.instance)
    return instance, instance.snapshot_id


@dataclass(frozen=True)
class TurnOptions:
    model: str | None
    approve: bool | None
    max_steps: int | None
    verbose: bool
    quiet: bool
    text: bool


def _first_turn(
    sessions: SessionManager, instance: SessionInstance, message: str | None, options: TurnOptions
) -> TurnResult | None:
    """Send -m's message, or answer a pending document when a model was named; else just remember it."""
    from domarkx.cli._turn import take_turn
    from domarkx.session.manager import pending

    if message is None and not (options.model is not None and pending(instance)):
        sessions.remember(instance, model=options.model, approve=options.approve, max_steps=options.max_steps)
        return None
    return take_turn(
        sessions, instance, message, model=options.model, approve=options.approve, max_steps=options.max_steps,
        verbose=options.verbose, quiet=options.quiet, show_text=options.text,
    )  # fmt: skip


def _report(
    instance: SessionInstance,
    snapshot_id: str,
    result: TurnResult | None,
    *,
    as_json: bool,
    quiet: bool,
    run: Report | None = None,
) -> None:
    """The instance id last on stdout (or the JSON), what to do next on stderr."""
    from domarkx.cli._execute import report_json
    from domarkx.cli._turn import next_steps, turn_json
    from domarkx.session.manager import pending

    if as_json:
        emit_json(
            {**turn_json(instance, result), "snapshot": snapshot_id, "pending": pending(instance), **report_json(run)}
        )
        return
    if not quiet:
        next_steps(instance, pending=pending(instance))
    click.echo(instance.id)


def _snapshot(instances: InstanceManager, ref: str, *, quiet: bool) -> SessionSnapshot:
    """The snapshot REF names, importing it first when it is a file."""
    from domarkx.session.snapshot import read_source

    if Path(ref).is_file() or ref == "-":
        data, path, base_dir = read_source(ref)
        snapshot = instances.snapshots.build(data, path=path, base_dir=base_dir)
        instances.snapshots.save(snapshot)
        if not quiet:
            progress(f"imported {path} as {snapshot.id}")
        return snapshot
    if ref.endswith((".md", ".markdown")) or "/" in ref:
        raise UsageError(f"no such file: {ref}", hint="REF is a snapshot id, a tag, or a Markdown file's path")
    return instances.snapshots.get(ref)
