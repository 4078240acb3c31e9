"""A third party's plugin, as small as the protocol allows: for tests that the core names nothing of a plugin.

Its type is ``echo``, its resource ids do not start with it, it runs ``echo-lang``
code with its one tool ``say``, and its destroy leaves a trace in the home so a
test can tell it was asked.
"""

from __future__ import annotations

import secrets
import shutil
from typing import Any

from domarkx.workspace.plugin import CodeRunner, Plugin, Resource, ToolError, ToolSpec, resource_path

SAY = ToolSpec(
    name="say",
    description="Say the text back.",
    parameters={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
)
DESTROYED = "echo-destroyed.txt"


class EchoPlugin(Plugin):
    """Says things back; keeps a counter of what it said as its state."""

    code = CodeRunner(tool="say", argument="text", languages=frozenset({"echo-lang"}))

    @property
    def type(self) -> str:
        return "echo"

    def create_resource(self, config: dict[str, Any]) -> Resource:
        resource_id = f"x{secrets.token_hex(8)}"
        (self.context.resource_dir(resource_id) / "said").write_text("")
        return Resource(id=resource_id, name="echo", type="echo", config=config)

    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        return [SAY]

    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        if tool_name != "say":
            raise ToolError(f"no tool {tool_name}")
        with (self.context.resource_dir(resource_id) / "said").open("a") as fh:
            fh.write(kwargs["text"] + "\n")
        return f"echo: {kwargs['text']}"

    def get_version(self, resource_id: str) -> str:
        return self.commit_version(resource_id)

    def commit_version(self, resource_id: str) -> str:
        said = (self.context.resource_dir(resource_id) / "said").read_text()
        return f"said-{len(said.splitlines())}"

    def load_version(self, resource_id: str, version_id: str) -> None:
        count = int(version_id.removeprefix("said-"))
        (self.context.resource_dir(resource_id) / "said").write_text("x\n" * count)

    def destroy_resource(self, resource_id: str) -> None:
        with (self.context.home / DESTROYED).open("a") as fh:
            fh.write(resource_id + "\n")
        shutil.rmtree(resource_path(self.context.home, resource_id), ignore_errors=True)
