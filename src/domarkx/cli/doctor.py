"""``domarkx doctor``: verify the store and repair what can be repaired."""

from __future__ import annotations

import click

from domarkx.cli._common import emit_json, json_option, open_store


@click.command("doctor")
@click.option("--repair", is_flag=True, help="Remove leftovers of interrupted writes.")
@json_option
def doctor(repair: bool, as_json: bool) -> None:
    """Re-hash every stored blob and check every snapshot and instance.

    Exit code 0 when the store is intact, 1 when problems remain.
    """
    from domarkx.session.doctor import check

    with open_store() as store:
        report = check(store, repair=repair)
    if as_json:
        emit_json(
            {"ok": report.ok, "checked": report.checked, "problems": report.problems, "repaired": report.repaired}
        )
    else:
        counts = ", ".join(f"{n} {what}" for what, n in report.checked.items())
        click.echo(f"checked {counts}")
        for line in report.repaired:
            click.echo(f"repaired: {line}")
        for line in report.problems:
            click.echo(f"problem: {line}")
        click.echo("store is intact" if report.ok else f"{len(report.problems)} problem(s)")
    if not report.ok:
        raise click.exceptions.Exit(1)
