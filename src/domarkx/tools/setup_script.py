"""Tools a session declares in a ``python setup-script`` block.

The block is ordinary Python that ends by binding ``tools`` to a list of plain
functions and/or :class:`~domarkx.tools.wrapper.ToolWrapper` objects::

    from domarkx.tools.executors import JupyterToolExecutor
    from domarkx.tools.wrapper import ToolWrapper

    def word_count(text: str) -> int:
        "Count the words in a text."
        return len(text.split())

    tools = [word_count, ToolWrapper(word_count, executor=JupyterToolExecutor(), name="kernel_word_count")]

It is code from a document, a stranger's: it runs only when a session
*instance* is created or talks to a model (never on ``import``, ``export`` or
listing), in a fresh namespace with the workspace directory as the working
directory, and by default inside a kernel of its own (:class:`_KernelScript`),
confined like the ``python`` plugin's, where the tools it lists run too. Only a
script marked ``host`` (```` ```python setup-script host ````) runs inside
domarkx itself, and only for a document the user trusts (:mod:`domarkx.trust`).

The same functions (:func:`declare`, :func:`call_declared`) do the work in
both places: here for ``host``, in the kernel otherwise, which imports this
module and hands the results back as JSON.
"""

from __future__ import annotations

import contextlib
import json
import linecache
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

from domarkx import ids
from domarkx.errors import DocumentError, DomarkxError
from domarkx.tools import schema
from domarkx.tools.executors import LocalToolExecutor
from domarkx.workspace.plugin import ToolError, ToolSpec

if TYPE_CHECKING:
    from domarkx.tools.kernel import Kernel

SCRIPT_TIMEOUT = 300.0
"""Seconds a setup-script may run in its kernel (it may install packages)."""
CALL_TIMEOUT = 60.0
"""Seconds one call of a setup-script tool may run in the kernel."""
_LOADED: dict[tuple[str, str, bool], list[SetupTool]] = {}
"""Scripts already run in this process, by (code, working directory, host)."""
_DECLARED: dict[str, SetupTool] = {}
"""In the kernel: the tools the script listed, by name, for :func:`call_declared`."""


@dataclass(frozen=True)
class SetupTool:
    """A tool from a setup-script: how to describe it to a model, and how to call it."""

    spec: ToolSpec
    call: Callable[..., Any]
    """Takes the model's arguments as keywords; raises ToolError on bad arguments or failure."""
    origin: Any
    """The function or ToolWrapper the script listed (whose executor may hold a kernel to close);
    for a script run in a kernel, the kernel."""


class ScriptFailed(Exception):
    """The script raised, or listed something that is not a tool; ``line`` is 1-based in the script."""

    def __init__(self, message: str, line: int = 1, col: int = 1) -> None:
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


def load_setup_tools(
    code: str, *, workdir: Path, path: str = "<setup-script>", line: int = 1, host: bool = False
) -> list[SetupTool]:
    """Run a setup-script and return the tools it lists in ``tools``.

    ``path`` and ``line`` (the block's first code line) place errors in the
    document. ``host`` runs it in this process (a trusted document's choice);
    otherwise it runs in a kernel of its own, working in ``workdir``.
    """
    loaded = _LOADED.get((code, str(workdir), host))
    if loaded is not None and all(_alive(tool) for tool in loaded):
        return loaded  # once per process: ``run -m`` checks the tools, then offers them
    try:
        if host:
            with contextlib.chdir(workdir), _no_process_exit():
                loaded = declare(code)
        else:
            loaded = _KernelScript.start(workdir).declare(code)
    except ScriptFailed as failed:
        raise DocumentError(failed.message, path=path, line=line + failed.line - 1, col=failed.col) from failed
    _LOADED[(code, str(workdir), host)] = loaded
    return loaded


def _alive(tool: SetupTool) -> bool:
    is_alive = getattr(tool.origin, "is_alive", None)
    return is_alive is None or bool(is_alive())


def declare(code: str) -> list[SetupTool]:
    """Run ``code`` in a fresh namespace and describe the tools it lists (raises :class:`ScriptFailed`)."""
    namespace: dict[str, Any] = {"__name__": "__domarkx_setup__"}
    filename = _remember_source(code)
    try:
        compiled = compile(code, filename, "exec")
    except SyntaxError as exc:
        raise ScriptFailed(f"setup-script: {exc.msg}", exc.lineno or 1, exc.offset or 1) from exc
    try:
        exec(compiled, namespace)  # noqa: S102 - running the document's setup-script is the point
    except (Exception, SystemExit) as exc:  # a script's sys.exit() must not end its process
        raise ScriptFailed(f"setup-script failed: {type(exc).__name__}: {exc}", _script_line(exc, filename)) from exc
    declared = namespace.get("tools", [])
    if not isinstance(declared, list | tuple):
        raise ScriptFailed("setup-script: `tools` must be a list")
    return [_setup_tool(item) for item in declared]


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


def _setup_tool(item: Any) -> SetupTool:
    wrapper_module = sys.modules.get("domarkx.tools.wrapper")
    if wrapper_module is not None and isinstance(item, wrapper_module.ToolWrapper):
        spec = ToolSpec(name=item.name, description=item.description, parameters=dict(item.schema["parameters"]))
        return SetupTool(spec=spec, call=_guarded(item.name, item.call), origin=item)
    if callable(item) and hasattr(item, "__name__"):
        try:
            model, spec = schema.args_model(item), schema.tool_spec(item)
        except DomarkxError as exc:
            raise ScriptFailed(f"setup-script: {exc.message}") from exc
        executor = LocalToolExecutor()

        def call(**kwargs: Any) -> Any:
            args = model.model_validate(kwargs)
            return executor.run(item, **{name: getattr(args, name) for name in model.model_fields})

        return SetupTool(spec=spec, call=_guarded(item.__name__, call), origin=item)
    raise ScriptFailed(f"setup-script: `tools` holds {type(item).__name__}, not a function or ToolWrapper")


def _guarded(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    """Turn argument validation errors into tool errors the model can correct."""

    def guarded(**kwargs: Any) -> Any:
        try:
            return call(**kwargs)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ToolError(f"bad arguments for {name}: {problems}") from exc

    return guarded


@contextlib.contextmanager
def _no_process_exit() -> Iterator[None]:
    """While a trusted script runs here, ``os._exit`` raises instead of ending domarkx half-way.

    A command that ended with exit status 0 in the middle of creating an instance
    would leave a half-made workspace behind and tell the user all went well.
    """

    def refuse(status: int) -> NoReturn:
        raise SystemExit(f"os._exit({status}) is not allowed in a setup-script")

    real = os._exit
    os._exit = refuse
    try:
        yield
    finally:
        os._exit = real


# -- in the kernel ----------------------------------------------------------------------


def declare_in_kernel(code: str) -> dict[str, Any]:
    """Kernel side of :meth:`_KernelScript.declare`: run the script, keep its tools, describe them."""
    _DECLARED.clear()
    try:
        tools = declare(code)
    except ScriptFailed as failed:
        return {"error": failed.message, "line": failed.line, "col": failed.col}
    _DECLARED.update((tool.spec.name, tool) for tool in tools)
    return {"tools": [tool.spec.model_dump() for tool in tools]}


def call_declared(name: str, arguments: str) -> dict[str, Any]:
    """Kernel side of a tool call: the JSON-able result, or the error a model should read."""
    try:
        value = _DECLARED[name].call(**json.loads(arguments))
        return {"value": json.loads(json.dumps(value))}
    except ToolError as exc:
        return {"error": exc.message}
    except Exception as exc:  # the document's own tool code: report, never crash the kernel's caller
        return {"error": f"{name} failed: {type(exc).__name__}: {exc}"}


class _KernelScript:
    """A setup-script's own kernel, working in the workspace directory; it ends with this process."""

    def __init__(self, kernel: Kernel, scratch: Path) -> None:
        self.kernel = kernel
        self.scratch = scratch

    @classmethod
    def start(cls, workdir: Path) -> _KernelScript:
        import atexit

        from domarkx.tools.kernel import Kernel

        scratch = Path(tempfile.mkdtemp(prefix="domarkx-setup-"))
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        kernel = Kernel.start(cwd=workdir, home=scratch / "home", state_dir=scratch)
        return cls(kernel, scratch)

    def declare(self, code: str) -> list[SetupTool]:
        answer = self._ask(f"declare_in_kernel({code!r})", SCRIPT_TIMEOUT, "the setup-script")
        if "error" in answer:
            self.kernel.shutdown()
            raise ScriptFailed(answer["error"], int(answer.get("line", 1)), int(answer.get("col", 1)))
        return [
            SetupTool(spec=spec, call=self._caller(spec.name), origin=self.kernel)
            for spec in (ToolSpec.model_validate(item) for item in answer["tools"])
        ]

    def _caller(self, name: str) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            try:
                arguments = json.dumps(kwargs)
            except (TypeError, ValueError) as exc:
                raise ToolError(f"arguments for {name} are not JSON: {exc}") from exc
            answer = self._ask(f"call_declared({name!r}, {arguments!r})", CALL_TIMEOUT, name)
            if "error" in answer:
                raise ToolError(str(answer["error"]))
            return answer["value"]

        return call

    def _ask(self, expression: str, timeout: float, what: str) -> dict[str, Any]:
        """Evaluate one of this module's kernel-side functions there and return its JSON answer."""
        from domarkx.tools.kernel import RESULT_MIME, KernelDied

        cell = (
            "from IPython.display import display as __domarkx_display\n"
            "from domarkx.tools import setup_script as __domarkx_setup\n"
            f"__domarkx_display({{{RESULT_MIME!r}: __domarkx_setup.{expression}}}, raw=True)\n"
        )
        try:
            out = self.kernel.execute(cell, timeout=timeout, silent=True)
        except KernelDied as exc:
            _gone(what, f"its kernel died ({exc.message})")
        if out.timed_out:
            _gone(what, f"it ran longer than {timeout:g} s")
        if out.error is not None or not out.values:
            _gone(what, out.error or "the kernel gave no answer")
        answer: dict[str, Any] = out.values[-1]
        return answer


def _gone(what: str, why: str) -> NoReturn:
    if what == "the setup-script":
        raise ScriptFailed(f"setup-script failed: {why}")
    raise ToolError(f"{what} failed: {why}")
