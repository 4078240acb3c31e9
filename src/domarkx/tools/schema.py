"""Describe a Python function to a model: an arguments model and a JSON schema from its signature.

One derivation serves every way a tool reaches a model (a plugin's tools, a
:class:`~domarkx.tools.wrapper.ToolWrapper`, a setup-script's plain functions),
so the schema the model sees and the validation its arguments go through can
never disagree.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from domarkx.errors import UsageError
from domarkx.workspace.plugin import ToolSpec

_NOT_KEYWORD = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.VAR_POSITIONAL,
    inspect.Parameter.VAR_KEYWORD,
)


def args_model(func: Callable[..., Any], *, name: str | None = None) -> type[BaseModel]:
    """A pydantic model of ``func``'s keyword arguments; unknown keys are rejected.

    A parameter without an annotation accepts anything; one without a default is required.
    """
    tool_name = name or func.__name__
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except (NameError, TypeError) as exc:
        raise UsageError(f"tool {tool_name!r}: cannot resolve its annotations: {exc}") from exc
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in _NOT_KEYWORD:
            raise UsageError(
                f"tool {tool_name!r}: parameter {param.name!r} cannot be passed by keyword",
                hint="a tool takes named parameters only (no *args, **kwargs or positional-only)",
            )
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (hints.get(param.name, Any), default)
    model: type[BaseModel] = create_model(f"{tool_name}_args", __config__=ConfigDict(extra="forbid"), **fields)
    return model


def object_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A closed JSON-schema object: the shape of every hand-written tool's arguments."""
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def parameters_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON-schema object a model's function calling expects for ``model``."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.setdefault("properties", {})
    return schema


def description(func: Callable[..., Any]) -> str:
    """The docstring, cleaned; a function without one is described by its name."""
    return inspect.getdoc(func) or f"Call {func.__name__}."


def tool_spec(func: Callable[..., Any], *, name: str | None = None, describe: str | None = None) -> ToolSpec:
    """The :class:`ToolSpec` a plain function is offered to a model with."""
    tool_name = name or func.__name__
    return ToolSpec(
        name=tool_name,
        description=describe or description(func),
        parameters=parameters_schema(args_model(func, name=tool_name)),
    )
