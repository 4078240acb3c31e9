"""The MCP server: the official SDK's low-level ``Server`` in front of a :class:`Recorder`.

Every piece of domarkx work (the store, plugins, tools) runs in one worker
thread: SQLite connections must stay in the thread that opened them, calls
on one instance must not interleave, and a slow command must not stall the
event loop that keeps the connection alive. Over stdio the instance is opened
only once the SDK has moved fd 1 aside, so nothing a tool or a kernel prints
can corrupt the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext

from domarkx import _keys
from domarkx._version import __version__
from domarkx.errors import DomarkxError, UsageError
from domarkx.mcp._recorder import Recorder

Progress = Callable[[str], None]
T = TypeVar("T")

INSTRUCTIONS = """\
This server is a domarkx workspace: a private directory (and any other resources) whose every state is \
versioned. Do all work through its tools (run_command for the shell, the file tools): each call is recorded \
and the whole workspace is committed after it, whatever the call changed. Call checkpoint before a risky \
change; rewind(to) brings the session and every file back to a checkpoint; diff(from, to) shows what changed; \
fork(at) copies the session into a new instance. Files outside the workspace are out of reach.
"""


class Worker:
    """One thread for all of a server's domarkx work; awaiting it never blocks the event loop."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="domarkx-mcp")

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in the worker; cancelled before it starts, it never runs (once started, it finishes)."""
        return await asyncio.wrap_future(self._pool.submit(func, *args))

    def close(self) -> None:
        """Wait for the call in flight (it records its result), drop those queued behind it."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def build_server(worker: Worker, recorder: Recorder, progress: Progress) -> Server[Any]:
    """The SDK server whose tools are the recorder's; ``progress`` hears of calls their client gave up on."""

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        specs = await worker.run(recorder.tools)
        return types.ListToolsResult(
            tools=[types.Tool(name=s.name, description=s.description, input_schema=s.parameters) for s in specs]
        )

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        gone = threading.Event()
        arguments = dict(params.arguments or {})
        try:
            answer = await worker.run(recorder.call, params.name, arguments, client_info(ctx), gone)
        except anyio.get_cancelled_exc_class():
            gone.set()  # the call goes on in the worker and is recorded as interrupted
            progress(f"the client stopped waiting for {params.name}: it runs to its end, recorded as interrupted")
            raise
        return types.CallToolResult(content=[types.TextContent(type="text", text=answer.text)], is_error=not answer.ok)

    return Server(
        "domarkx", version=__version__, instructions=INSTRUCTIONS, on_list_tools=list_tools, on_call_tool=call_tool
    )


def client_info(ctx: ServerRequestContext[Any]) -> dict[str, str]:
    """The client's name and version, from ``initialize`` (or, on newer protocol versions, each request)."""
    params = ctx.session.client_params
    if params is None:
        return {}
    return {"name": params.client_info.name, "version": params.client_info.version}


def serve(ref: str, *, transport: Literal["stdio", "http"], port: int, progress: Progress, announce: Progress) -> None:
    """Serve instance ``ref`` (or a new one of a document or snapshot) until the client or a signal ends it.

    ``progress`` gets status lines; ``announce`` the lines a user needs (the
    HTTP address and its token, printed once).
    """
    try:
        if transport == "stdio":
            anyio.run(_stdio, ref, progress)
        else:
            anyio.run(_http, ref, port, progress, announce)
    except BaseExceptionGroup as group:  # anyio's task groups wrap what a task raised
        raise _unwrap(group) from group


async def _stdio(ref: str, progress: Progress) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write), _opened(ref, progress) as (worker, recorder):
        server = build_server(worker, recorder, progress)
        await server.run(read, write, server.create_initialization_options())


async def _http(ref: str, port: int, progress: Progress, announce: Progress) -> None:
    import uvicorn

    from domarkx.mcp._http import guarded_app, listen, token

    secret = token()
    sock = listen(port)
    async with _opened(ref, progress) as (worker, recorder):
        app = guarded_app(build_server(worker, recorder, progress), sock.getsockname()[1], secret)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        announce(f"serving over MCP at {url}")
        if _keys.get("DOMARKX_MCP_TOKEN") is not None:
            announce("token: the value of $DOMARKX_MCP_TOKEN (send it as `Authorization: Bearer <token>`)")
        else:
            announce(f"token (shown once; send it as `Authorization: Bearer <token>`): {secret}")
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
        await uvicorn.Server(config).serve(sockets=[sock])


@contextlib.asynccontextmanager
async def _opened(ref: str, progress: Progress) -> AsyncIterator[tuple[Worker, Recorder]]:
    worker = Worker()
    try:
        recorder = await worker.run(open_recorder, ref, progress)
        try:
            yield worker, recorder
        finally:
            with anyio.CancelScope(shield=True):
                await worker.run(_close, recorder)
    finally:
        worker.close()


def open_recorder(ref: str, progress: Progress) -> Recorder:
    """In the worker: open the store, find or start the instance, check its tools."""
    from domarkx.data.store import Store
    from domarkx.session.instance import InstanceManager

    instances = InstanceManager(Store())
    recorder = Recorder(instances, instance_for(instances, ref, progress))
    if instances.get(recorder.instance_id).status != "running":
        raise UsageError(
            f"instance {ref} is stopped (a hidden one, kept by a reset, always is)",
            hint=f"`domarkx instances start {ref}` first, or serve a fork of it",
        )
    recorder.tools()  # a clash of tool names stops the server before any client sees it
    progress(f"serving instance {recorder.instance_id}")
    return recorder


def instance_for(instances: Any, ref: str, progress: Progress) -> str:
    """An existing instance's id, or a new instance of a document path or a snapshot (like ``run``)."""
    from domarkx.session.snapshot import read_source

    if ref == "-":
        raise UsageError("domarkx mcp cannot read a document from stdin", hint="pass the document's path")
    if Path(ref).is_file():
        data, path, base_dir = read_source(ref)
        snapshot = instances.snapshots.build(data, path=path, base_dir=base_dir)
        instances.snapshots.save(snapshot)
        progress(f"imported {path} as {snapshot.id}")
    elif ref.endswith((".md", ".markdown")) or "/" in ref:
        raise UsageError(f"no such file: {ref}", hint="REF is an instance, a snapshot id or tag, or a document's path")
    else:
        kind, found = instances.store.resolve_any(ref)
        if kind == "instance":
            return str(found)
        snapshot = instances.snapshots.get(found)
    return str(instances.create(snapshot, progress=progress).id)


def _close(recorder: Recorder) -> None:
    try:
        recorder.close()
    finally:
        recorder.instances.store.close()


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one domarkx error (or interrupt) inside nested exception groups, else the group itself."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        item = pending.pop()
        if isinstance(item, BaseExceptionGroup):
            pending += item.exceptions
        else:
            leaves.append(item)
    for kind in (DomarkxError, KeyboardInterrupt):
        found = [leaf for leaf in leaves if isinstance(leaf, kind)]
        if found:
            return found[0]
    return group
