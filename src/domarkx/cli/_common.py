"""Helpers every command shares: the store, JSON output, tables, key=value options."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from domarkx.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from domarkx.data.store import Store

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
"""What a terminal would act on rather than show: control characters (ANSI escapes begin with one),
line breaks, bidirectional overrides and invisible marks, and the lone surrogates of undecodable paths."""


def shown(text: str | None, width: int = 80) -> str:
    """A stored string (a title, a name, a path) as one harmless line of at most ``width`` characters.

    Titles and names come from documents and models: printed raw, a newline or an
    escape sequence would forge lines or repaint the terminal, and a megabyte
    title would flood it. Unsafe characters are escaped (``\\n``, ``\\x1b``, ``\\u202e``).
    """
    if text is None:
        return "-"
    safe = _UNSAFE.sub(_escape, text[: width * 8])
    return safe if len(safe) <= width and len(text) <= width * 8 else safe[: width - 1] + "…"


def shown_lines(text: str) -> str:
    """Stored text shown whole (a message by ``log N``): :func:`shown`'s escaping, but its lines and tabs kept."""
    return _UNSAFE.sub(lambda m: m.group() if m.group() in "\n\t" else _escape(m), text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return {10: "\\n", 13: "\\r", 9: "\\t"}.get(code) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _grant_trust(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        from domarkx import trust

        ctx.with_resource(trust.granted_for_this_command())


trust_option = click.option(
    "--trust",
    is_flag=True,
    expose_value=False,
    callback=_grant_trust,
    help="Trust the document for this command only: allow the powers it asks for (see `domarkx trust`).",
)


LOW_DISK = 16 * 1024 * 1024
"""Free bytes below which a runtime failure is likely the disk's."""


def low_disk_hint() -> str | None:
    """The full-disk hint when the store's disk is (nearly) full, else ``None``.

    Not every tool says "No space left on device" when a write fails (git's
    checkout says only "unable to write file"), so a runtime failure on a disk
    this full gets the hint whatever the message says.
    """
    import shutil  # here: only a failure needs it, and quick commands start without it

    from domarkx.data.store import DISK_FULL_HINT, default_home

    where = default_home()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        usage = shutil.disk_usage(where)
    except OSError:
        return None
    if usage.free >= LOW_DISK:
        return None
    return f"only {human_size(usage.free)} free where the store is: {DISK_FULL_HINT}"


def progress(message: str) -> None:
    """A ``·`` line on stderr saying what long work is doing (dim on a terminal)."""
    click.secho(f"· {message}", err=True, dim=True)


def open_store() -> Store:
    from domarkx.data.store import Store

    return Store()


def emit_json(data: Any) -> None:
    import json  # here: the commands people type between turns start in a few dozen milliseconds

    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, width: int = 80) -> None:
    """Print aligned columns, like `docker ps`; every cell goes through :func:`shown`."""
    rows = [[shown(cell, width) for cell in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [list(headers), *rows]:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def parse_assignments(values: Sequence[str], *, option: str = "--set") -> dict[str, str]:
    """``KEY=VALUE`` options into a dict; a missing ``=`` is a usage error."""
    result: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} expects KEY=VALUE, got {item!r}", hint=f"e.g. {option} name=value")
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
    """Write to ``output`` atomically (temp file + rename), or to stdout.

    The file gets the mode any other program's new file would (0666 less the
    umask), or keeps the mode of the file it replaces: ``mkstemp`` alone makes it 0600.
    """
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    import tempfile  # here, not at the top: it pulls in shutil, random and the compressors
    from pathlib import Path

    target = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=f".{target.name}.")
        os.fchmod(fd, _file_mode(target))
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except FileNotFoundError as exc:
        raise UsageError(f"cannot write {output}: its directory does not exist") from exc
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from exc


def _file_mode(target: Path) -> int:
    import stat

    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask
