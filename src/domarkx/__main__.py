"""``python -m domarkx``."""

from domarkx.cli import run

run()
