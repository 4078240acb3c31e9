"""Tools a session declares in a ``python setup-script`` block.

The block is ordinary Python that ends by binding ``tools`` to a list of plain
functions and/or :class:`~domarkx.tools.wrapper.ToolWrapper` objects::

    from domarkx.tools.executors import JupyterToolExecutor
    from domarkx.tools.wrapper import ToolWrapper

    def word_count(text: str) -> int:
        "Count the words in a text."
        return len(text.split())

    tools = [word_count, ToolWrapper(word_count, executor=JupyterToolExecutor(), name="kernel_word_count")]

It is code from a document, so it runs only when a session *instance* is
created (never on ``import``, ``export`` or listing), in a fresh namespace with
the workspace directory as the working directory.
"""

from __future__ import annotations

import contextlib
import linecache
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from domarkx import ids
from domarkx.errors import DocumentError
from domarkx.tools import schema
from domarkx.tools.executors import LocalToolExecutor
from domarkx.workspace.plugin import ToolError, ToolSpec


@dataclass(frozen=True)
class SetupTool:
    """A tool from a setup-script: how to describe it to a model, and how to call it."""

    spec: ToolSpec
    call: Callable[..., Any]
    """Takes the model's arguments as keywords; raises ToolError on bad arguments or failure."""
    origin: Any
    """The function or ToolWrapper the script listed (whose executor may hold a kernel to close)."""


def load_setup_tools(code: str, *, workdir: Path, path: str = "<setup-script>", line: int = 1) -> list[SetupTool]:
    """Run a setup-script and return the tools it lists in ``tools``.

    ``path`` and ``line`` (the block's first code line) place errors in the document.
    """
    namespace: dict[str, Any] = {"__name__": "__domarkx_setup__"}
    filename = _remember_source(code)
    try:
        compiled = compile(code, filename, "exec")
    except SyntaxError as exc:
        raise DocumentError(
            f"setup-script: {exc.msg}", path=path, line=line + (exc.lineno or 1) - 1, col=exc.offset or 1
        ) from exc
    try:
        with contextlib.chdir(workdir):
            exec(compiled, namespace)  # noqa: S102 - running the document's setup-script is the point
    except (Exception, SystemExit) as exc:  # a script's sys.exit() must not end domarkx
        raise DocumentError(
            f"setup-script failed: {type(exc).__name__}: {exc}",
            path=path,
            line=line + _script_line(exc, filename) - 1,
        ) from exc
    declared = namespace.get("tools", [])
    if not isinstance(declared, list | tuple):
        raise DocumentError("setup-script: `tools` must be a list", path=path, line=line)
    return [_setup_tool(item, path=path, line=line) for item in declared]


def _remember_source(code: str) -> str:
    """Keep the script's lines where ``inspect`` looks, so its functions can be sent to a kernel.

    Returns the script's file name, unique to its content, so two scripts never
    answer for each other.
    """
    filename = f"<setup-script {ids.short(ids.digest_bytes(code.encode()))}>"
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    return filename


def _script_line(exc: BaseException, filename: str) -> int:
    """The line of the setup-script the exception came from (its innermost frame there)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return (frames[-1].lineno or 1) if frames else 1


def _setup_tool(item: Any, *, path: str, line: int) -> SetupTool:
    wrapper_module = sys.modules.get("domarkx.tools.wrapper")
    if wrapper_module is not None and isinstance(item, wrapper_module.ToolWrapper):
        spec = ToolSpec(name=item.name, description=item.description, parameters=dict(item.schema["parameters"]))
        return SetupTool(spec=spec, call=_guarded(item.name, item.call), origin=item)
    if callable(item) and hasattr(item, "__name__"):
        model = schema.args_model(item)
        executor = LocalToolExecutor()

        def call(**kwargs: Any) -> Any:
            args = model.model_validate(kwargs)
            return executor.run(item, **{name: getattr(args, name) for name in model.model_fields})

        return SetupTool(spec=schema.tool_spec(item), call=_guarded(item.__name__, call), origin=item)
    raise DocumentError(
        f"setup-script: `tools` holds {type(item).__name__}, not a function or ToolWrapper",
        path=path,
        line=line,
    )


def _guarded(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    """Turn argument validation errors into tool errors the model can correct."""

    def guarded(**kwargs: Any) -> Any:
        try:
            return call(**kwargs)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ToolError(f"bad arguments for {name}: {problems}") from exc

    return guarded
