"""``domarkx new``: a document from a template."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from domarkx.cli._common import emit_json, json_option, parse_assignments, table, write_output
from domarkx.errors import UsageError

if TYPE_CHECKING:
    from domarkx.session.templates import Template


@click.command("new")
@click.argument("template", required=False, metavar="TEMPLATE")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Fill a template variable (repeatable).")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option("-f", "--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option("-l", "--list", "list_", is_flag=True, help="List the templates and their variables.")
@json_option
def new(
    template: str | None,
    assignments: tuple[str, ...],
    output: str | None,
    force: bool,
    list_: bool,
    as_json: bool,
) -> None:
    """Render TEMPLATE (a name from --list, or a path to a .md file) into a new document.

    Variables the template declares have defaults; --set overrides them. Your
    own templates go in $DOMARKX_HOME/templates/NAME.md and shadow shipped ones.

    \b
    Examples:
      domarkx new --list
      domarkx new chat -o talk.md
      domarkx new shell-task --set task="Find the largest file" -o task.md
    """
    from domarkx.session import templates

    if list_:
        if template or assignments or output:
            raise UsageError("--list takes no template, --set or -o", hint="domarkx new --list")
        _print_list(templates.list_templates(), as_json)
        return
    if template is None:
        raise UsageError("which template?", hint="domarkx new TEMPLATE; see them with domarkx new --list")
    found = templates.find(template)
    text = templates.render(found, parse_assignments(assignments))
    to_file = output is not None and output != "-"
    if to_file and Path(str(output)).exists() and not force:
        raise UsageError(f"{output} already exists", hint="pass --force to overwrite it, or pick another -o")
    if not (as_json and not to_file):
        write_output(text, output)
    if as_json:
        emit_json(
            {
                "template": found.name,
                "source": found.origin,
                "path": str(found.path),
                "output": output if to_file else None,
                "document": None if to_file else text,
            }
        )
    elif to_file:
        click.echo(f"wrote {output} from template {found.name}", err=True)
        click.echo(
            f"next: domarkx run {shlex.quote(str(output))} --model PROVIDER:MODEL  (e.g. openai:gpt-4o-mini)", err=True
        )


def _print_list(found: list[Template], as_json: bool) -> None:
    if as_json:
        emit_json(
            [
                {
                    "name": t.name,
                    "source": t.origin,
                    "path": str(t.path),
                    "description": t.description,
                    "variables": t.variables,
                }
                for t in found
            ]
        )
        return
    table(
        ["NAME", "SOURCE", "VARIABLES", "DESCRIPTION"],
        [
            [
                t.name,
                t.origin,
                ", ".join(n if d is not None else f"{n} (required)" for n, d in t.variables.items()) or "-",
                t.description or "-",
            ]
            for t in found
        ],
    )
