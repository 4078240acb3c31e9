"""Fixtures every test shares: a private DOMARKX_HOME and a clean environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from domarkx.cli import main

# The fake OpenAI-compatible server's fixtures (`fake_openai`, `openai_env`), for any test.
pytest_plugins = ["fake_openai"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="Also run the long variants marked slow.")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``bwrap`` tests skip with a reason where bubblewrap cannot run, and fail instead in CI."""
    if item.get_closest_marker("bwrap") is None:
        return
    from domarkx.workspace.plugins import _sandbox

    if _sandbox.bwrap_works():
        return
    if os.environ.get("CI"):
        pytest.fail("bubblewrap cannot run here, and CI must exercise the sandbox (install bubblewrap)", pytrace=False)
    pytest.skip("bubblewrap cannot run here: apt-get install bubblewrap (with CI=1 this fails instead)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``slow`` tests (long stress variants) run only with ``--run-slow``, so the suite stays quick."""
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="long variant: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def domarkx_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own store and no model credentials from the developer's shell."""
    home = tmp_path_factory.mktemp("domarkx-home")
    monkeypatch.setenv("DOMARKX_HOME", str(home))
    monkeypatch.setenv("DOMARKX_CONFIG", str(tmp_path_factory.mktemp("domarkx-config")))  # trust records
    for key in list(os.environ):
        if key.startswith(("OPENAI_", "ANTHROPIC_", "DOMARKX_MODEL")):
            monkeypatch.delenv(key)
    return home


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``domarkx ARGS…`` in-process through the real entry point; returns a CliResult."""

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke
