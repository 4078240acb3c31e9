"""Tool executors: where a portable tool's code runs.

A portable tool is a plain function with no domarkx imports (see
:mod:`domarkx.tools.portable`), so the same function can run in this process or
be sent, as source (see :func:`tool_source`), to a Jupyter kernel: a private one, or the kernel of a
``python`` resource, so that the tool sees that resource's files and variables.
Either way a failure comes back as :class:`~domarkx.workspace.plugin.ToolError`,
the error a model is shown.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import json
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from domarkx.errors import UsageError
from domarkx.tools.kernel import RESULT_MIME, Kernel, KernelDied
from domarkx.workspace.plugin import ToolError

if TYPE_CHECKING:
    from domarkx.workspace.plugins.python import PythonPlugin


class ToolExecutor(Protocol):
    """Runs a tool function with keyword arguments somewhere and returns its result."""

    def run(self, func: Callable[..., Any], /, **kwargs: Any) -> Any: ...


class LocalToolExecutor:
    """Calls the function in this process."""

    def run(self, func: Callable[..., Any], /, **kwargs: Any) -> Any:
        try:
            return func(**kwargs)
        except ToolError:
            raise
        except Exception as exc:  # the tool's own failure is the model's to see, not a crash
            raise ToolError(f"{func.__name__} failed: {type(exc).__name__}: {exc}") from exc


# Runs in the kernel in a namespace of its own, so a tool neither sees nor
# overwrites the variables of the resource it runs in.
_RUNNER = f"""
import json
from IPython.display import display
namespace = {{"__name__": "__domarkx_tool__"}}
exec(compile(source, "<tool " + name + ">", "exec"), namespace)
value = namespace[name](**json.loads(kwargs))
display({{{RESULT_MIME!r}: {{"value": json.loads(json.dumps(value))}}}}, raw=True)
"""


def remote_call(func: Callable[..., Any], kwargs: dict[str, Any]) -> str:
    """The cell that defines ``func`` from source and calls it with ``kwargs`` (as JSON)."""
    try:
        encoded = json.dumps(kwargs)
    except (TypeError, ValueError) as exc:
        raise ToolError(f"arguments for {func.__name__} are not JSON: {exc}") from exc
    scope = {"__name__": "__domarkx_runner__", "source": tool_source(func), "name": func.__name__, "kwargs": encoded}
    return f"exec(compile({_RUNNER!r}, '<domarkx tool runner>', 'exec'), {scope!r})"


def tool_source(func: Callable[..., Any]) -> str:
    """The source that defines ``func`` in a kernel.

    A module-level function of a portable module (one that imports nothing from
    domarkx, like everything in :mod:`domarkx.tools.portable`) travels with its
    whole module, so its helpers and imports come along. Anything else travels
    alone, so it must import what it needs inside its body.
    """
    module = sys.modules.get(func.__module__)
    if module is not None and func.__qualname__ == func.__name__:
        with contextlib.suppress(OSError, TypeError):
            text = inspect.getsource(module)
            if _is_portable(text):
                return text
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as exc:
        raise UsageError(
            f"cannot send {getattr(func, '__name__', func)!r} to a kernel: its source is not available",
            hint="define the tool in a file or a setup-script",
        ) from exc


def _is_portable(source: str) -> bool:
    """Whether module source imports nothing from domarkx (nor relatively)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or _is_ours(node.module or "")):
            return False
        if isinstance(node, ast.Import) and any(_is_ours(alias.name) for alias in node.names):
            return False
    return True


def _is_ours(module: str) -> bool:
    return module == "domarkx" or module.startswith("domarkx.")


class JupyterToolExecutor:
    """Runs tools inside a Jupyter kernel: its own, or a ``python`` resource's.

    ``JupyterToolExecutor()`` starts a private kernel on first use, working in
    ``workdir`` (default: the current directory when the executor is made, which
    in a setup-script is the workspace), and stops it on :meth:`close`. The
    kernel is confined as ``confined`` says (see :meth:`Kernel.start`): tools
    then see ``workdir`` as ``/workspace`` and nothing else of the host.
    """

    def __init__(self, *, workdir: Path | None = None, timeout: float = 60.0, confined: bool | None = None) -> None:
        self.workdir = workdir or Path.cwd()
        self.timeout = timeout
        self.confined = confined
        self._kernel: Kernel | None = None
        self._scratch: Path | None = None
        self._provider: Callable[[], Kernel] = self._own_kernel

    @classmethod
    def for_resource(cls, plugin: PythonPlugin, resource_id: str, *, timeout: float = 60.0) -> JupyterToolExecutor:
        """An executor that runs tools in the kernel of a ``python`` resource."""
        executor = cls(timeout=timeout)
        executor._provider = lambda: plugin.kernel(resource_id)
        return executor

    def run(self, func: Callable[..., Any], /, **kwargs: Any) -> Any:
        code = remote_call(func, kwargs)
        try:
            out = self.kernel().execute(code, timeout=self.timeout, silent=True)
        except KernelDied as exc:
            raise ToolError(f"{func.__name__}: the kernel died ({exc.message})") from exc
        if out.timed_out:
            raise ToolError(f"{func.__name__} timed out after {self.timeout:g} s in the kernel")
        if out.error is not None:
            raise ToolError(f"{func.__name__} failed in the kernel: {out.error}")
        if not out.values:
            raise ToolError(f"{func.__name__} returned nothing from the kernel")
        return out.values[-1]["value"]

    def kernel(self) -> Kernel:
        """The kernel tools run in (started on first use); its ``work`` is the tools' directory as they see it."""
        return self._provider()

    def _own_kernel(self) -> Kernel:
        if self._kernel is None or not self._kernel.is_alive():
            self._scratch = self._scratch or Path(tempfile.mkdtemp(prefix="domarkx-kernel-"))
            self._kernel = Kernel.start(
                cwd=self.workdir, home=self._scratch / "home", state_dir=self._scratch, confined=self.confined
            )
        return self._kernel

    def close(self) -> None:
        """Stop the executor's own kernel (a resource's kernel is the resource's to stop)."""
        if self._kernel is not None:
            self._kernel.shutdown()
            self._kernel = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> JupyterToolExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
