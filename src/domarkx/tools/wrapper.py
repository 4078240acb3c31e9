"""``ToolWrapper``: a portable tool as an AutoGen tool, run by a tool executor.

The wrapper is an ``autogen_core.tools.BaseTool``, so any AutoGen agent or
workbench can call our tools; the executor decides where the function runs.
This module needs the optional extra: ``pip install 'domarkx[autogen]'``.
"""

from __future__ import annotations

import asyncio
import json
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from domarkx.errors import DomarkxError
from domarkx.tools import schema
from domarkx.tools.executors import LocalToolExecutor, ToolExecutor

try:
    from autogen_core import CancellationToken
    from autogen_core.tools import BaseTool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise DomarkxError(
        "ToolWrapper needs autogen-core, which is not installed",
        hint="pip install 'domarkx[autogen]'",
    ) from exc


class ToolWrapper(BaseTool[BaseModel, Any]):
    """Offer ``tool_func`` to AutoGen with a schema from its signature and docstring."""

    def __init__(
        self,
        tool_func: Callable[..., Any],
        executor: ToolExecutor | None = None,
        name: str | None = None,
        description: str | None = None,
    ) -> None:
        self.tool_func = tool_func
        self.executor: ToolExecutor = executor if executor is not None else LocalToolExecutor()
        tool_name = name or tool_func.__name__
        returns = typing.get_type_hints(tool_func).get("return", object)
        super().__init__(
            args_type=schema.args_model(tool_func, name=tool_name),
            return_type=returns if isinstance(returns, type) else object,
            name=tool_name,
            description=description or schema.description(tool_func),
        )

    def call(self, **kwargs: Any) -> Any:
        """Validate ``kwargs`` against the schema and run the tool synchronously."""
        args = self.args_type().model_validate(kwargs)
        return self.executor.run(self.tool_func, **_as_kwargs(args))

    async def run(self, args: BaseModel, cancellation_token: CancellationToken) -> Any:
        # Executors block (a kernel round trip, a subprocess), so they run in a worker thread.
        future = asyncio.ensure_future(asyncio.to_thread(self.executor.run, self.tool_func, **_as_kwargs(args)))
        cancellation_token.link_future(future)
        return await future

    def return_value_as_string(self, value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _as_kwargs(args: BaseModel) -> dict[str, Any]:
    """Validated field values as they are, not dumped: a model-typed argument stays a model."""
    return {name: getattr(args, name) for name in type(args).model_fields}
