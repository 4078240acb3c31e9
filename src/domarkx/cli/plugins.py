"""``domarkx plugins``: the resource types this installation knows."""

from __future__ import annotations

import click

from domarkx.cli._common import emit_json, json_option


@click.command("plugins")
@json_option
def plugins(as_json: bool) -> None:
    """List installed resource plugins (entry-point group `domarkx.plugins`) and their tools.

    A plugin's name is the `type` a `workspace-config` resource names. A
    plugin that cannot run here (an optional part of domarkx not installed,
    e.g. `pip install 'domarkx[python]'`) says so and what to install.

    \b
    Examples:
      domarkx plugins
      domarkx plugins --json | jq '.[].name'
    """
    from domarkx.workspace.manager import installed_plugins

    infos = installed_plugins()
    if as_json:
        emit_json([info.model_dump() for info in infos])
        return
    if not infos:
        click.echo("no plugins installed")
        return
    for index, info in enumerate(infos):
        if index:
            click.echo()
        click.echo(f"{info.name}  ({info.module})")
        if not info.usable:
            click.echo(f"  not usable here: {info.error}")
            if info.hint:
                click.echo(f"  hint: {info.hint}")
            continue
        if info.description:
            click.echo(f"  {info.description}")
        if not info.tools:
            click.echo("  tools: (known once a resource exists)")
        width = max((len(tool.name) for tool in info.tools), default=0)
        for tool in info.tools:
            summary = tool.description.strip().splitlines()[0] if tool.description.strip() else ""
            click.echo(f"  - {tool.name.ljust(width)}  {summary}")
