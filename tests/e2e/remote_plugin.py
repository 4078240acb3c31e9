"""A resource whose state lives outside domarkx (a remote service): for tests that it is replayed, not re-run.

Its tool ``bump`` increments a counter in a file in the home (standing for the
service), so calling it again would give another answer; its versions say
nothing of that state, and ``restorable`` is False.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from domarkx.workspace.plugin import Plugin, Resource, ToolError, ToolSpec

BUMP = ToolSpec(name="bump", description="Count one more.", parameters={"type": "object", "properties": {}})
COUNTER = "remote-counter.txt"


class RemotePlugin(Plugin):
    """A counter kept by a 'remote service' (a file in the home)."""

    restorable: ClassVar[bool] = False

    @property
    def type(self) -> str:
        return "remote"

    def create_resource(self, config: dict[str, Any]) -> Resource:
        return Resource(id=f"remote-{secrets.token_hex(6)}", name="remote", type="remote", config=config)

    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        return [BUMP]

    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        if tool_name != "bump":
            raise ToolError(f"no tool {tool_name}")
        path = self.context.home / COUNTER
        count = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(count))
        return f"count is {count}"

    def get_version(self, resource_id: str) -> str:
        return "remote"

    def commit_version(self, resource_id: str) -> str:
        return "remote"

    def load_version(self, resource_id: str, version_id: str) -> None:
        """Nothing to restore: the state is the service's."""

    def destroy_resource(self, resource_id: str) -> None:
        """The service keeps its state."""
