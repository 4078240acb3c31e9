"""Tool executors: the same portable function, run in-process and inside a real Jupyter kernel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from domarkx.data.store import Store
from domarkx.errors import UsageError
from domarkx.tools.executors import JupyterToolExecutor, LocalToolExecutor, ToolExecutor
from domarkx.tools.setup_script import load_setup_tools
from domarkx.workspace.plugin import PluginContext, ToolError
from domarkx.workspace.plugins.python import PythonPlugin


def summarise(path: str, top: int = 2) -> dict[str, object]:
    """A portable tool: its imports are inside, it takes and returns JSON."""
    import collections
    import os

    with open(path, encoding="utf-8") as fh:
        words = fh.read().split()
    common = collections.Counter(words).most_common(top)
    return {"cwd": os.getcwd(), "words": len(words), "common": [list(pair) for pair in common]}


def fails(reason: str) -> None:
    raise ValueError(f"refused: {reason}")


def not_json() -> object:
    return object()


@pytest.fixture(scope="module")
def kernel_executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterToolExecutor]:
    with JupyterToolExecutor(workdir=tmp_path_factory.mktemp("kernel-work"), timeout=20) as executor:
        yield executor


def test_local_executor_calls_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "text.txt").write_text("a b a")
    monkeypatch.chdir(tmp_path)
    executor: ToolExecutor = LocalToolExecutor()
    assert executor.run(summarise, path="text.txt", top=1) == {
        "cwd": str(tmp_path),
        "words": 3,
        "common": [["a", 2]],
    }
    with pytest.raises(ToolError, match="fails failed: ValueError: refused: no"):
        executor.run(fails, reason="no")


def test_jupyter_executor_runs_the_function_in_its_kernel(kernel_executor: JupyterToolExecutor) -> None:
    (kernel_executor.workdir / "text.txt").write_text("x y x z x")
    result = kernel_executor.run(summarise, path="text.txt")
    assert result == {"cwd": kernel_executor.kernel().work, "words": 5, "common": [["x", 3], ["y", 1]]}


def test_a_portable_module_travels_whole(kernel_executor: JupyterToolExecutor) -> None:
    """``files.list_dir`` calls helpers of its module; they are sent along with it."""
    from domarkx.tools.portable import files

    (kernel_executor.workdir / "sub").mkdir()
    listing = kernel_executor.run(files.list_dir, path=".", root=".")
    assert "sub/" in listing.splitlines()
    with pytest.raises(ToolError, match="OutsideRootError"):
        kernel_executor.run(files.read_file, path="../x", root=".")


def test_a_setup_script_function_can_be_sent(kernel_executor: JupyterToolExecutor, tmp_path: Path) -> None:
    script = "def triple(n: int) -> int:\n    return 3 * n\n\ntools = [triple]\n"
    [tool] = load_setup_tools(script, workdir=tmp_path)
    assert kernel_executor.run(tool.origin, n=14) == 42


def test_jupyter_executor_errors_carry_the_remote_last_line(kernel_executor: JupyterToolExecutor) -> None:
    with pytest.raises(ToolError, match="fails failed in the kernel: ValueError: refused: because"):
        kernel_executor.run(fails, reason="because")
    with pytest.raises(ToolError, match="not JSON serializable"):
        kernel_executor.run(not_json)
    with pytest.raises(ToolError, match="are not JSON"):
        kernel_executor.run(summarise, path=Path("x"))
    with pytest.raises(UsageError, match="source is not available"):
        kernel_executor.run(len)


def test_jupyter_executor_in_a_python_resource_kernel(tmp_path: Path) -> None:
    store = Store(tmp_path)
    plugin = PythonPlugin(PluginContext(home=tmp_path, store=store))
    resource = plugin.create_resource({}).id
    try:
        plugin.execute_tool(resource, "execute_python", code="open('text.txt', 'w').write('one two two')")
        executor = JupyterToolExecutor.for_resource(plugin, resource, timeout=20)
        result = executor.run(summarise, path="text.txt", top=1)
        assert result["common"] == [["two", 2]]
        assert result["cwd"] == plugin.kernel(resource).work
        leaked = plugin.execute_tool(
            resource, "execute_python", code="[n for n in ('summarise', 'namespace') if n in dir()]"
        )
        assert leaked == "[result]\n[]", "the tool runs beside the resource's variables, not among them"
    finally:
        plugin.destroy_resource(resource)
        store.close()
