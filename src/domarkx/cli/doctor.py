"""``domarkx doctor``: verify the store and repair what can be repaired."""

from __future__ import annotations

import click

from domarkx.cli._common import emit_json, json_option, open_store


@click.command("doctor")
@click.option("--repair", is_flag=True, help="Remove what interrupted commands left behind.")
@json_option
def doctor(repair: bool, as_json: bool) -> None:
    """Re-hash every stored blob and check every snapshot and instance.

    Problems are damage (lost or corrupt data, named with the snapshots and
    instances that need it); leftovers are what a killed command leaves
    behind, harmless, and removed by --repair. Exit code 0 when the store is
    intact (leftovers or not), 1 when there are problems.

    \b
    Examples:
      domarkx doctor
      domarkx doctor --repair --json
    """
    from domarkx.session.doctor import check

    with open_store() as store:
        report = check(store, repair=repair)
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "problems": report.problems,
                "leftovers": report.leftovers,
                "repaired": report.repaired,
                "notes": report.notes,
            }
        )
    else:
        counts = ", ".join(f"{n} {what}" for what, n in report.checked.items())
        click.echo(f"checked {counts}")
        for prefix, lines in (
            ("repaired", report.repaired),
            ("leftover", report.leftovers),
            ("note", report.notes),
            ("problem", report.problems),
        ):
            for line in lines:
                click.echo(f"{prefix}: {line}")
        if report.leftovers:
            click.echo("`domarkx doctor --repair` removes the leftovers")
        click.echo("store is intact" if report.ok else f"{len(report.problems)} problem(s)")
    if not report.ok:
        raise click.exceptions.Exit(1)
