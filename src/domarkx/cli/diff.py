"""``domarkx diff A B``: what changed between two workspace versions, resource by resource."""

from __future__ import annotations

import click

from domarkx.cli._common import emit_json, json_option, open_store


@click.command("diff")
@click.argument("old", metavar="A")
@click.argument("new", metavar="[B]", required=False)
@click.option("--stat", "as_stat", is_flag=True, help="Only a line per change and the totals, like `git diff --stat`.")
@click.option("--resource", "resources", multiple=True, metavar="R", help="Only resource R (repeatable).")
@json_option
def diff_cmd(old: str, new: str | None, as_stat: bool, resources: tuple[str, ...], as_json: bool) -> None:
    """Show what changed from workspace A to workspace B.

    A and B are INSTANCE@N (the workspace after message N), INSTANCE (its
    head), a committed SNAPSHOT, or a workspace version id. With only an
    INSTANCE, what `exec` and `cp` changed since its last message (like a bare
    `git diff`). Each resource's
    plugin says what changed in it: files as a unified patch (binary files
    summarised), sqlite schema and rows by key, python variables, container
    files.

    \b
    Examples:
      domarkx diff try1@3 try1@5
      domarkx diff try1                 # changed by hand since the last message
      domarkx diff try1@3 try1 --stat
      domarkx diff try1 try2 --resource db --json
    """
    from domarkx.errors import UsageError
    from domarkx.workspace.compare import compare, conversation_point, render, resolve_point, stat, to_json
    from domarkx.workspace.host import PluginHost  # not WorkspaceManager: reading versions needs no pydantic

    with open_store() as store:
        if new is None:
            if "@" in old or store.resolve_any(old)[0] != "instance":
                raise UsageError("give two workspaces to compare", hint="domarkx diff A B (see `domarkx diff --help`)")
            a, b = conversation_point(store, old), resolve_point(store, old)
        else:
            a, b = resolve_point(store, old), resolve_point(store, new)
        found = compare(PluginHost(store), a.version, b.version)
    if resources:
        unknown = sorted(set(resources) - {c.name for c in found})
        if unknown:
            names = ", ".join(c.name for c in found)
            raise UsageError(f"no resource named {unknown[0]!r} in these versions", hint=f"resources: {names}")
        found = [c for c in found if c.name in resources]
    if as_json:
        emit_json(
            {
                "old": {"ref": a.ref, "version": a.version},
                "new": {"ref": b.ref, "version": b.version},
                "resources": to_json(found, patches=not as_stat),
            }
        )
    else:
        click.echo(stat(found) if as_stat else render(found), nl=False)
