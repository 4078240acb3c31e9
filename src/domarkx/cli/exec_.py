"""``domarkx exec``: run a command in an instance's shell (like ``docker exec``)."""

from __future__ import annotations

import shlex

import click


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("ref", metavar="INSTANCE")
@click.option("--resource", metavar="NAME", help="The resource to run in (default: the one that runs shell commands).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD...")
def exec_cmd(ref: str, resource: str | None, command: tuple[str, ...]) -> None:
    """Run CMD in the instance's shell resource; its stdout, stderr and exit code are passed through.

    Several words are quoted and joined; a single argument is taken as a
    whole shell command line, so `-- 'make && ls > out.txt'` works. With
    --resource, CMD is code for that resource instead (Python source for a
    python resource, SQL for sqlite).

    The change is committed as a new workspace version right away; it becomes
    the instance's head and the next assistant message's version includes it
    (docs/sessions.md, "Out-of-band changes").

    \b
    Example:
      domarkx exec try1 -- ls -la
      domarkx exec try1 -- 'pytest -q > report.txt'
      domarkx exec try1 --resource db -- 'SELECT count(*) FROM notes'
    """
    from domarkx.cli._session import managers

    manager, _ = managers()
    with manager.store:
        line = command[0] if len(command) == 1 else shlex.join(command)
        outcome, notes = manager.exec(ref, line, resource=resource)
    for note in notes:
        click.secho(f"· {note}", err=True, dim=True)
    result = outcome.output
    if isinstance(result, dict) and "exit_code" in result:
        click.echo(result.get("stdout") or "", nl=False)
        click.echo(result.get("stderr") or "", nl=False, err=True)
        code = 124 if result.get("timed_out") else int(result["exit_code"] or 0)
    else:
        click.echo(outcome.text, nl=not outcome.text.endswith("\n"), err=not outcome.ok)
        code = 0 if outcome.ok else 1
    if code:
        raise click.exceptions.Exit(code)
