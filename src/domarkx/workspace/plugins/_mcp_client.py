"""Connections of the ``mcp`` plugin: the official SDK's async client behind a synchronous face.

Plugins are called synchronously, the SDK is async, and a server's session
should outlive one call (a browser page, a login). So each connection owns a
thread running its own event loop; one task there holds the SDK ``Client``
open until :meth:`Connection.close`, and calls are sent to that loop and
waited for with the resource's time-out. Connections are kept per resource
directory for the life of the process (like the python plugin's kernels) and
closed at exit.

A ``command`` runs as local_shell commands do: through bubblewrap when it can
(``plugins/_sandbox.py``: no network, the system read-only, only the
resource's ``work/`` writable at ``/workspace``), with an environment built
from nothing; its stderr goes to ``server.log`` in the resource directory.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from domarkx._version import __version__
from domarkx.errors import DomarkxError, UsageError

if TYPE_CHECKING:
    from mcp import Client

    from domarkx.workspace.plugins.mcp import McpConfig

T = TypeVar("T")
_OPEN: dict[Path, Connection] = {}
_LOCK = threading.Lock()
_CLOSE_WAIT = 10.0
_IDENTITY = {"USER": "domarkx", "LOGNAME": "domarkx", "SHELL": "/bin/sh"}
"""Set so that the SDK's inherited defaults (your user name, your shell) do not reach the server."""


def connection(base: Path, config: McpConfig) -> Connection:
    """The open connection of the resource in ``base``, made (or remade, after a server died) on demand."""
    with _LOCK:
        found = _OPEN.get(base)
        if found is not None and found.alive:
            return found
        if found is not None:
            found.close()
        made = Connection(lambda: _client(base, config), config.timeout, config.url or config.command or "")
        _OPEN[base] = made
        return made


def disconnect(base: Path) -> None:
    """Close the resource's connection, if this process has one (the server program ends)."""
    with _LOCK:
        found = _OPEN.pop(base, None)
    if found is not None:
        found.close()


@atexit.register
def _close_all() -> None:
    for base in list(_OPEN):
        disconnect(base)


def _client(base: Path, config: McpConfig) -> Client:
    try:
        from mcp import Client, Implementation
    except ImportError as exc:
        raise UsageError("mcp resources need the MCP SDK", hint="pip install 'domarkx[mcp]'") from exc
    identity = Implementation(name="domarkx", version=__version__)
    if config.url is not None:
        return Client(config.url, client_info=identity, read_timeout_seconds=config.timeout)
    return Client(_stdio(base, config), client_info=identity, read_timeout_seconds=config.timeout)


def _stdio(base: Path, config: McpConfig) -> Any:
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    from domarkx.tools.portable import shell
    from domarkx.workspace.plugins import _sandbox

    assert config.command is not None
    work = base / "work"
    argv = [config.command, *config.args]
    home = str(base / "home")
    if config.sandbox != "none":
        if _sandbox.bwrap_works():
            argv, home = [*_sandbox.wrapper(work), *argv], _sandbox.SANDBOX_TMP
        elif config.sandbox == "bwrap":
            raise UsageError(
                "mcp sandbox 'bwrap' was asked for, but bubblewrap cannot run here",
                hint="install bubblewrap (apt-get install bubblewrap) or use sandbox: auto",
            )
        else:
            _sandbox.warn_unconfined("bubblewrap (bwrap) is not available", "mcp server programs")
    Path(base / "home").mkdir(exist_ok=True)
    env = {**shell.minimal_env(home), **_IDENTITY, **config.env}
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=str(work))
    return _logged(stdio_client, params, base / "server.log")


@contextlib.asynccontextmanager
async def _logged(stdio_client: Any, params: Any, log: Path) -> AsyncIterator[Any]:
    """The stdio transport, the server's stderr appended to ``log`` (open as long as the session)."""
    with log.open("a", encoding="utf-8") as errlog:
        async with stdio_client(params, errlog=errlog) as streams:
            yield streams


class Connection:
    """One MCP session, held open by a task on a private event loop."""

    def __init__(self, make: Callable[[], Client], timeout: float, what: str) -> None:
        self.timeout, self.what = timeout, what
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="domarkx-mcp-client", daemon=True)
        self._thread.start()
        self._stop = asyncio.Event()
        self._ready: concurrent.futures.Future[Client] = concurrent.futures.Future()
        self._held = asyncio.run_coroutine_threadsafe(self._hold(make), self._loop)
        try:
            self.client = self._ready.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            self.close()
            raise DomarkxError(f"the MCP server {what} did not answer within {timeout:g} s") from exc
        except Exception as exc:
            self.close()
            hint = "its stderr is in server.log in the resource directory" if "://" not in what else None
            raise DomarkxError(
                f"cannot start a session with the MCP server {what}: {describe(exc)}", hint=hint
            ) from exc

    @property
    def alive(self) -> bool:
        return not self._held.done()

    async def _hold(self, make: Callable[[], Client]) -> None:
        try:
            async with make() as client:
                self._ready.set_result(client)
                await self._stop.wait()
        except BaseException as exc:  # whatever ended the session is the connect error, if it never opened
            if not self._ready.done():
                self._ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(describe(exc)))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise DomarkxError(f"the MCP server {self.what} did not answer within {self.timeout:g} s") from exc
        except Exception as exc:
            raise DomarkxError(f"the MCP server {self.what} failed: {describe(exc)}") from exc

    def list_tools(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(name, description, input schema) of every tool, all pages."""
        found: list[tuple[str, str, dict[str, Any]]] = []
        cursor: str | None = None
        for _ in range(100):
            page = self._run(self.client.list_tools(cursor=cursor))
            found += [(t.name, t.description or t.title or "", dict(t.input_schema)) for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        return found

    def call(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        """(result as text, whether the server says it failed)."""
        result = self._run(self.client.call_tool(name, arguments))
        return render(result), bool(result.is_error)

    def close(self) -> None:
        if not self._held.done():
            self._loop.call_soon_threadsafe(self._stop.set)
            with contextlib.suppress(Exception):  # closing: a session that failed has nothing more to say
                self._held.result(_CLOSE_WAIT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CLOSE_WAIT)
        if not self._thread.is_alive():
            self._loop.close()


def render(result: Any) -> str:
    """A tool result's content blocks as text; what is not text is described, not inlined."""
    parts: list[str] = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {block.mime_type}, {len(block.data) * 3 // 4} bytes]")
        elif kind == "resource":
            text = getattr(block.resource, "text", None)
            parts.append(text if isinstance(text, str) else f"[resource {block.resource.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{kind or 'content'}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, sort_keys=True))
    return "\n".join(parts)


def describe(exc: BaseException) -> str:
    """One line for an error that may be an exception group (anyio wraps what tasks raise)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
