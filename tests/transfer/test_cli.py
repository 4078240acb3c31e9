"""The transfer commands as the command line shows them: listed, documented, and light to start."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_listed_in_help(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("--help").out
    for command in ("save", "load", "push", "pull", "login", "logout"):
        assert f"  {command} " in out


@pytest.mark.parametrize("command", ["save", "load", "push", "pull", "login", "logout"])
def test_help_imports_no_http_client(command: str) -> None:
    """Help and bundle commands start without the HTTP stack (only push/pull/login need it)."""
    code = (
        f"import sys; from domarkx.cli import main; code = main([{command!r}, '--help']);"
        " print(code, 'httpx2' in sys.modules, 'pydantic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-3:] == ["0", "False", "False"], done.stdout


def test_usage_errors(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert cli("save").code == 2  # REF is required
    assert cli("push", "only-one-argument").code == 2
    assert cli("push", "x", "localhost:5000/x", "--ca-file", str(tmp_path / "missing.pem")).code == 2
    assert cli("save", "nothing-named-so", "-o", str(tmp_path / "x.tar")).code == 2
    assert not (tmp_path / "x.tar").exists()  # nothing written for a failed save
    assert list(tmp_path.iterdir()) == []  # nor its temporary file


def test_login_reads_the_password_only_from_stdin_or_a_prompt(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("login", "localhost:5000", "-u", "me", "-p", "secret")
    assert result.code == 2 and "error: no such option" in result.err
