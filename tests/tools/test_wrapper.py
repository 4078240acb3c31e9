"""ToolWrapper: our tools as AutoGen tools, run by AutoGen's own machinery (no model needed)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

autogen_core = pytest.importorskip(
    "autogen_core", reason="ToolWrapper needs the autogen extra: pip install 'domarkx[autogen]'"
)

from autogen_core import AgentId, CancellationToken, FunctionCall, SingleThreadedAgentRuntime  # noqa: E402
from autogen_core.models import FunctionExecutionResult  # noqa: E402
from autogen_core.tool_agent import ToolAgent, ToolExecutionException  # noqa: E402
from autogen_core.tools import StaticWorkbench  # noqa: E402

from domarkx.tools.executors import LocalToolExecutor  # noqa: E402
from domarkx.tools.setup_script import load_setup_tools  # noqa: E402
from domarkx.tools.wrapper import ToolWrapper  # noqa: E402


def scale(values: list[float], factor: float = 2.0) -> dict[str, Any]:
    """Multiply every value by a factor."""
    return {"scaled": [v * factor for v in values]}


def refuse(reason: str) -> str:
    raise RuntimeError(reason)


class CountingExecutor(LocalToolExecutor):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def run(self, func: Any, /, **kwargs: Any) -> Any:
        self.calls.append(func.__name__)
        return super().run(func, **kwargs)


def test_schema_comes_from_signature_and_docstring() -> None:
    tool = ToolWrapper(scale)
    assert tool.name == "scale"
    assert tool.description == "Multiply every value by a factor."
    params = tool.schema["parameters"]
    assert params["required"] == ["values"]
    assert params["properties"]["values"]["type"] == "array"
    renamed = ToolWrapper(scale, name="times", description="Scale numbers.")
    assert (renamed.name, renamed.description) == ("times", "Scale numbers.")


def test_run_json_goes_through_the_executor() -> None:
    executor = CountingExecutor()
    tool = ToolWrapper(scale, executor=executor)
    result = asyncio.run(tool.run_json({"values": [1, 2], "factor": 3}, CancellationToken()))
    assert result == {"scaled": [3.0, 6.0]}
    assert executor.calls == ["scale"]
    assert tool.return_value_as_string(result) == '{"scaled": [3.0, 6.0]}'


def test_a_workbench_calls_it_like_any_autogen_tool() -> None:
    bench = StaticWorkbench([ToolWrapper(scale), ToolWrapper(refuse)])

    async def scenario() -> tuple[Any, Any, list[str]]:
        ok = await bench.call_tool("scale", {"values": [0.5]})
        bad = await bench.call_tool("refuse", {"reason": "not today"})
        names = [schema["name"] for schema in await bench.list_tools()]
        return ok, bad, names

    ok, bad, names = asyncio.run(scenario())
    assert names == ["scale", "refuse"]
    assert (ok.is_error, json.loads(ok.result[0].content)) == (False, {"scaled": [1.0]})
    assert bad.is_error and "refuse failed: RuntimeError: not today" in bad.result[0].content


def test_an_autogen_agent_runs_it() -> None:
    """AutoGen's ToolAgent, in AutoGen's runtime, executes the function call a model would make."""

    async def scenario() -> FunctionExecutionResult:
        runtime = SingleThreadedAgentRuntime()
        await ToolAgent.register(runtime, "tools", lambda: ToolAgent("domarkx tools", [ToolWrapper(scale)]))
        runtime.start()
        try:
            call = FunctionCall(id="call-1", name="scale", arguments=json.dumps({"values": [2, 4], "factor": 0.5}))
            result = await runtime.send_message(call, AgentId("tools", "default"))
        finally:
            await runtime.stop_when_idle()
        assert isinstance(result, FunctionExecutionResult)
        return result

    result = asyncio.run(scenario())
    assert (result.call_id, result.is_error) == ("call-1", False)
    assert json.loads(result.content) == {"scaled": [1.0, 2.0]}


def test_an_autogen_agent_reports_a_failing_tool() -> None:
    async def scenario() -> None:
        runtime = SingleThreadedAgentRuntime()
        await ToolAgent.register(runtime, "tools", lambda: ToolAgent("domarkx tools", [ToolWrapper(refuse)]))
        runtime.start()
        try:
            call = FunctionCall(id="call-2", name="refuse", arguments=json.dumps({"reason": "no"}))
            await runtime.send_message(call, AgentId("tools", "default"))
        finally:
            await runtime.stop_when_idle()

    with pytest.raises(ToolExecutionException) as caught:
        asyncio.run(scenario())
    assert caught.value.content == "Error: refuse failed: RuntimeError: no"


@pytest.mark.parametrize("host", [False, True], ids=["in-kernel", "host"])
def test_setup_script_tool_wrappers_become_specs(tmp_path: Path, host: bool) -> None:
    script = (
        "from domarkx.tools.wrapper import ToolWrapper\n"
        "def shout(text: str) -> str:\n"
        "    'Upper-case a text.'\n"
        "    return text.upper()\n"
        "tools = [ToolWrapper(shout, name='loud')]\n"
    )
    [tool] = load_setup_tools(script, workdir=tmp_path, host=host)
    assert (tool.spec.name, tool.spec.description) == ("loud", "Upper-case a text.")
    assert tool.spec.parameters["required"] == ["text"]
    assert tool.call(text="hey") == "HEY"
    assert isinstance(tool.origin, ToolWrapper) is host  # in a kernel, the wrapper lives there
