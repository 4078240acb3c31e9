"""``domarkx run``: snapshot → instance (like ``docker run``)."""

from __future__ import annotations

from pathlib import Path

import click

from domarkx.cli._common import trust_option
from domarkx.cli._session import managers, max_steps_option, model_option, progress, run_turn
from domarkx.errors import DomarkxError, UsageError


@click.command("run")
@click.argument("ref", metavar="REF|PATH")
@click.option("--name", metavar="NAME", help="Name the instance (usable wherever an id is).")
@model_option
@click.option("-m", "--message", metavar="TEXT", help="Then send this user message to the model.")
@max_steps_option
@click.option("-q", "--quiet", is_flag=True, help="Print only the instance id.")
@trust_option
def run_cmd(ref: str, name: str | None, model: str | None, message: str | None, max_steps: int, quiet: bool) -> None:
    """Create an instance of snapshot REF (or of the Markdown file PATH) and run it.

    The workspace is provisioned, the setup block runs, then the code blocks of
    the assistant messages run in order, offline, like re-running a notebook;
    each assistant message is linked to the workspace version after its blocks.
    With -m, that message then goes to the model. The instance id is the last
    line printed.

    \b
    Examples:
      domarkx run examples/hello.md
      domarkx run demo --name try1 -m "now add tests" --model openai:gpt-4o-mini
    """
    from domarkx.session.snapshot import read_source

    instances, sessions = managers()
    with instances.store:
        if Path(ref).is_file() or ref == "-":
            data, path, base_dir = read_source(ref)
            snapshot = instances.snapshots.build(data, path=path, base_dir=base_dir)
            instances.snapshots.save(snapshot)
            if not quiet:
                progress(f"imported {path} as {snapshot.id}")
        elif ref.endswith((".md", ".markdown")) or "/" in ref:
            raise UsageError(f"no such file: {ref}", hint="REF is a snapshot id, a tag, or a Markdown file's path")
        else:
            snapshot = instances.snapshots.get(ref)
        instance = instances.create(snapshot, name=name, progress=(lambda _: None) if quiet else progress)
        if not quiet:
            for msg in instance.messages:
                for output in msg.outputs:
                    click.echo(output.text, nl=not output.text.endswith("\n"))
        if message is not None:
            try:
                run_turn(sessions, instance, message, model, max_steps, quiet)
            except DomarkxError:
                click.echo(instance.id)  # the instance exists and stays usable: say which
                raise
    click.echo(instance.id)
