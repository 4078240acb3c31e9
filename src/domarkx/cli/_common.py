"""Helpers every command shares: the store, JSON output, tables, key=value options."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from domarkx.errors import UsageError

if TYPE_CHECKING:
    from domarkx.data.store import Store

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def open_store() -> Store:
    from domarkx.data.store import Store

    return Store()


def emit_json(data: Any) -> None:
    import json  # here: the commands people type between turns start in a few dozen milliseconds

    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print aligned columns, like `docker ps`."""
    rows = [list(r) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [list(headers), *rows]:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def parse_assignments(values: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` options into a dict; a missing ``=`` is a usage error."""
    result: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}", hint="e.g. --set project=demo")
        result[key] = value
    return result


def ago(timestamp: float) -> str:
    """A human age such as "3 minutes ago"."""
    seconds = max(0, int(time.time() - timestamp))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1000
    raise AssertionError("unreachable")


def write_output(text: str, output: str | None) -> None:
    """Write to ``output`` atomically (temp file + rename), or to stdout."""
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    import tempfile  # here, not at the top: it pulls in shutil, random and the compressors
    from pathlib import Path

    target = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except FileNotFoundError as exc:
        raise UsageError(f"cannot write {output}: its directory does not exist") from exc
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from exc
