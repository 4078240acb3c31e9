"""``domarkx verify``: re-run a recorded session offline and check it against its record."""

from __future__ import annotations

import click

from domarkx.cli._common import emit_json, json_option
from domarkx.errors import DomarkxError


class VerifyFailed(DomarkxError):
    """The re-run diverged from the record (exit code 1)."""


@click.command("verify")
@click.argument("ref", metavar="DOC|SNAPSHOT|INSTANCE")
@click.option("--twice", is_flag=True, help="Run each message twice, to tell nondeterminism from divergence.")
@json_option
def verify_cmd(ref: str, twice: bool, as_json: bool) -> None:
    """Re-run a recorded session offline and check it matches the record.

    In a throwaway instance, the code blocks and recorded tool calls run again
    in the sandbox (the model's replies come from the record); after each
    assistant message its outputs, tool results and workspace are compared
    with the record. Exit 0 when everything checked matches, 1 at the first
    divergent message, with its diff. The report also says what a re-run
    cannot guarantee (replayed calls, denied network, nondeterministic steps
    with --twice) and what is never checked.

    \b
    Examples:
      domarkx verify session.md
      domarkx verify try1 --twice
      domarkx verify session.md --json > report.json
    """
    from domarkx.cli._session import managers, progress
    from domarkx.session.execute import Progress
    from domarkx.session.verify import record_of, report_lines, verify

    instances, _sessions = managers()
    with instances.store:
        snapshot, source = record_of(instances, ref)
        result = verify(instances, snapshot, source, twice=twice, observer=Progress(progress))
    if as_json:
        emit_json(result.as_json())
    else:
        report_lines(result, emit=click.echo)
    first = result.divergence
    if first is not None:
        hint = "see the diff above" if not as_json else "see first_divergence in the report"
        if not twice:
            hint += "; --twice tells a step that is merely nondeterministic from a real divergence"
        raise VerifyFailed(f"message {first.message} diverged from the record: {first.what}", hint=hint)
