"""``domarkx save|load`` (bundles) and ``push|pull|login|logout`` (OCI registries)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from domarkx import ids
from domarkx.cli._common import emit_json, json_option, open_store
from domarkx.errors import UsageError

if TYPE_CHECKING:
    from domarkx.transfer import Loaded


def _say(text: str) -> None:
    click.secho(f"· {text}", err=True)


@contextlib.contextmanager
def _output(output: str | None) -> Iterator[IO[bytes]]:
    """``output`` written atomically (temp file + rename), or stdout when it is not a terminal."""
    if output is None or output == "-":
        if sys.stdout.isatty():
            raise UsageError("a bundle is binary: not writing it to a terminal", hint="pass -o FILE.tar")
        yield sys.stdout.buffer
        return
    target = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("save")
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.option("-o", "--output", metavar="FILE", help="Write the bundle to FILE (default: stdout, if not a terminal).")
def save_cmd(refs: tuple[str, ...], output: str | None) -> None:
    """Write snapshots or instances (whole history, every workspace version) to a bundle.

    REF is a snapshot (id, prefix or tag) or an instance (id, prefix or name).
    The bundle is an OCI image layout in a tar; `domarkx load` takes it into
    another home with the same ids, and `fork --at N` works there for every N.

    \b
    Examples:
      domarkx save try1 -o try1.tar
      domarkx save demo try1 try2 > sessions.tar
    """
    from domarkx import transfer

    with open_store() as store, _output(output) as out:
        roots = transfer.save(store, refs, out)
    for root in roots:
        _say(f"saved {root.kind} {_short(root.kind, root.id)}")


@click.command("load")
@click.argument("file", metavar="FILE.tar")
@json_option
def load_cmd(file: str, as_json: bool) -> None:
    """Check a bundle whole, then add its sessions to this home (`-` reads stdin).

    Nothing is added unless everything checks out (every blob against its
    digest, every id against its content); what is already here is skipped,
    so loading twice changes nothing. Prints the id of each session named
    when the bundle was saved.
    """
    from domarkx import transfer

    with open_store() as store, _input(file) as source:
        loaded = transfer.load(store, source, where=f"bundle {file}")
    _report(loaded, as_json)


@contextlib.contextmanager
def _input(file: str) -> Iterator[IO[bytes]]:
    if file == "-":
        yield sys.stdin.buffer
        return
    try:
        fh = open(file, "rb")  # noqa: SIM115 - closed below, after the load
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {file}", hint="pass the path of a bundle written by `domarkx save`") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{file} is a directory, not a bundle") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror}") from exc
    with fh:
        yield fh


def _report(loaded: Loaded, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "roots": [root.model_dump() for root in loaded.roots],
                "new_snapshots": loaded.snapshots,
                "new_instances": loaded.instances,
                "notes": loaded.notes,
            }
        )
        return
    new = set(loaded.snapshots) | set(loaded.instances)
    for root in loaded.roots:
        state = "loaded" if root.id in new else "already here:"
        _say(f"{state} {root.kind} {_short(root.kind, root.id)}")
    for note in loaded.notes:
        _say(note)
    for root in loaded.roots:
        click.echo(root.id)


def _short(kind: str, found: str) -> str:
    return ids.short(found) if kind == "snapshot" else found[:12]
