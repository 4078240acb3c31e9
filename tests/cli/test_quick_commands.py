"""The commands people type between turns start fast and read the store safely.

Fast means: none of the heavy libraries is imported on their way (each run in a
fresh interpreter, through the real CLI entry point). Safely means: a damaged
database is a one-line store error pointing at ``doctor``, never an internal error.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pydantic", "markdown_it", "yaml", "openai", "docker", "jupyter_client", "ipykernel", "anthropic")
DOC = "---\ntitle: quick\n---\n\n## user\n\n> list\n\n## assistant\n\n```bash\necho hi\n```\n"
QUICK = [
    ["--help"],
    ["--version"],
    ["snapshots", "ls"],
    ["snapshots", "ls", "--json"],
    ["snapshots", "inspect", "quick"],
    ["instances", "ls"],
    ["instances", "ls", "--json"],
    ["instances", "inspect", "try1"],
    ["log", "try1"],
    ["log", "try1", "--json"],
]
PROBE = """
import json, sys
from domarkx.cli import main
code = main(sys.argv[1:])
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture
def populated(cli, tmp_path: Path, domarkx_home: Path) -> Path:  # type: ignore[no-untyped-def]
    doc = tmp_path / "doc.md"
    doc.write_text(DOC)
    assert cli("import", str(doc), "-t", "quick").code == 0
    assert cli("run", "quick", "--name", "try1", "-q").code == 0
    return domarkx_home


@pytest.mark.parametrize("args", QUICK, ids=" ".join)
def test_quick_commands_import_nothing_heavy(populated: Path, args: list[str]) -> None:
    env = {**os.environ, "DOMARKX_HOME": str(populated)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stderr.splitlines()[-1]) == [], f"{' '.join(args)} imported heavy modules"


def damage_tables(home: Path) -> None:
    """Overwrite every page but the first (header and schema) with garbage: the file opens, reads fail."""
    db = sqlite3.connect(home / "store.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    path = home / "store.db"
    size = path.stat().st_size
    with path.open("r+b") as fh:
        fh.seek(page_size)
        fh.write(b"\xa5" * (size - page_size))


@pytest.mark.parametrize(
    "args", [["snapshots", "ls"], ["instances", "ls"], ["log", "try1"], ["instances", "inspect", "try1"]], ids=" ".join
)
def test_a_damaged_database_is_a_store_error(cli, populated: Path, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    damage_tables(populated)

    result = cli(*args)

    assert result.code == 1, result
    lines = result.err.splitlines()
    assert lines[0].startswith("error: store database is damaged"), result.err
    assert lines[1] == "  hint: run `domarkx doctor`"
    assert "internal error" not in result.err
