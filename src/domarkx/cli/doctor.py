"""``domarkx doctor``: verify the store and this machine, and repair what can be repaired."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from domarkx.cli._common import emit_json, json_option, open_store

if TYPE_CHECKING:
    from domarkx.session.doctor import Report
    from domarkx.session.environment import Finding


@click.command("doctor")
@click.option("--repair", is_flag=True, help="Remove what interrupted commands left behind.")
@click.option("-a", "--all", "everything", is_flag=True, help="Also check engines no instance uses yet (Docker).")
@json_option
def doctor(repair: bool, everything: bool, as_json: bool) -> None:
    """Re-hash every stored blob, check every snapshot and instance, and check this machine.

    Problems are damage (lost or corrupt data, named with the snapshots and
    instances that need it) or something an instance needs that this machine
    lacks (the Docker engine for a docker_sandbox resource); leftovers are what
    a killed command leaves behind, harmless, and removed by --repair. The
    machine's checks: bubblewrap present and working, the Python kernel's
    packages, the Docker engine (when an instance uses it, or with --all), the
    store's schema. Exit code 0 when nothing is a problem, 1 otherwise.

    \b
    Examples:
      domarkx doctor
      domarkx doctor --all
      domarkx doctor --repair --json
    """
    from domarkx.session import environment
    from domarkx.session.doctor import check

    with open_store() as store:
        report = check(store, repair=repair)
        machine = environment.check(store, everything=everything)
    problems = report.problems + [f"{f.what}: {f.detail}" for f in machine if f.level == "problem"]
    if as_json:
        emit_json(
            {
                "ok": not problems,
                "checked": report.checked,
                "problems": report.problems,
                "leftovers": report.leftovers,
                "repaired": report.repaired,
                "notes": report.notes,
                "environment": [
                    {"check": f.what, "status": f.level, "detail": f.detail, "hint": f.hint} for f in machine
                ],
            }
        )
    else:
        _print(report, machine, problems)
    if problems:
        raise click.exceptions.Exit(1)


def _print(report: Report, machine: list[Finding], problems: list[str]) -> None:
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
    for finding in machine:
        click.echo(f"{finding.level}: {finding.what}: {finding.detail}")
        if finding.hint and not finding.ok:
            click.echo(f"  hint: {finding.hint}")
    if not problems:
        click.echo("store is intact; this machine can run its instances")
    elif not report.problems:
        click.echo(f"store is intact; {len(problems)} problem(s) with this machine")
    else:
        click.echo(f"{len(problems)} problem(s)")
