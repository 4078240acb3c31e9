"""``domarkx cp``: copy files between an instance's workspace and the host (like ``docker cp``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from domarkx import ids, paths
from domarkx.cli._common import emit_json, json_option, shown
from domarkx.errors import UsageError

if TYPE_CHECKING:
    from domarkx.session.instance import InstanceManager

_KIND = "instance:"


@click.command("cp")
@click.argument("source", metavar="SRC")
@click.argument("dest", metavar="DEST")
@click.option("-r", "--resource", metavar="NAME", help="The resource to copy from or to (default: the shell's).")
@click.option("-q", "--quiet", is_flag=True, help="Say nothing on success.")
@json_option
def cp(source: str, dest: str, resource: str | None, quiet: bool, as_json: bool) -> None:
    """Copy a file or directory out of an instance (SRC is INSTANCE:PATH) or into it (DEST is INSTANCE:PATH).

    PATH is relative to the resource's work dir (`INSTANCE:` alone is its
    top) and may not leave it; symlinks are copied as links, never followed,
    and FIFOs or devices are refused. Copying to an existing directory copies
    into it. A host path with a colon in its name is written `./a:b`.

    A copy in is committed and recorded like an `exec`: the head moves to the
    new workspace version and `domarkx log` shows it (docs/sessions.md).

    \b
    Examples:
      domarkx cp try1:report.txt .
      domarkx cp try1:src ./src-from-try1
      domarkx cp data.csv try1:inputs/
      domarkx cp --resource py try1:plot.png /tmp/
    """
    from domarkx.cli._session import managers

    out_of, into = _remote(source), _remote(dest)
    if (out_of is None) == (into is None):
        raise UsageError(
            "one of SRC and DEST must be INSTANCE:PATH, the other a path on this machine",
            hint="e.g. domarkx cp try1:out.txt . or domarkx cp in.txt try1:",
        )
    manager, _ = managers()
    with manager.store:
        report = _out(manager, out_of, dest, resource) if out_of else _in(manager, into, source, resource)
    if as_json:
        emit_json(report)
    elif not quiet:
        _tell(report)


def _out(manager: InstanceManager, remote: tuple[str, bytes], dest: str, resource: str | None) -> dict[str, Any]:
    from domarkx.session import outofband

    name = outofband.copy_out(manager, remote[0], remote[1], Path(dest), resource=resource)
    return {"direction": "out", "resource": name, "path": paths.escape(remote[1]), "host": dest}


def _in(
    manager: InstanceManager, remote: tuple[str, bytes] | None, source: str, resource: str | None
) -> dict[str, Any]:
    from domarkx.session import outofband

    assert remote is not None
    name, head, event, notes = outofband.copy_in(manager, remote[0], Path(source), remote[1], resource=resource)
    report = {"direction": "in", "resource": name, "path": paths.escape(remote[1]), "host": source}
    return report | {"workspace_version": head, "moved": event is not None, "notes": notes}


def _tell(report: dict[str, Any]) -> None:
    remote = f"{report['resource']}:{report['path']}"
    arrow = f"{remote} → {report['host']}" if report["direction"] == "out" else f"{report['host']} → {remote}"
    click.secho(f"· copied {shown(arrow, 200)}", err=True, dim=True)
    for note in report.get("notes", []):
        click.secho(f"· {note}", err=True, dim=True)
    if report.get("moved"):
        moved = f"· workspace {ids.short(report['workspace_version'])} is the new head (see `domarkx log`)"
        click.secho(moved, err=True, dim=True)


def _remote(argument: str) -> tuple[str, bytes] | None:
    """(instance reference, path as bytes) for ``INSTANCE:PATH``; None for a path on this machine.

    As with ``docker cp``, an argument is remote when a colon comes before any
    slash; ``instance:REF:PATH`` says so explicitly.
    """
    text = argument.removeprefix(_KIND)
    ref, colon, path = text.partition(":")
    if not colon or not ref or "/" in ref:
        if argument.startswith(_KIND):
            raise UsageError(f"{argument!r} names no path", hint="write instance:REF:PATH, e.g. instance:try1:out.txt")
        return None
    return ref, os.fsencode(path)
