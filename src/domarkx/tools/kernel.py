"""A Jupyter kernel started for domarkx: scrubbed environment, private directories, hard time-outs.

Both the ``python`` resource plugin and :class:`~domarkx.tools.executors.JupyterToolExecutor`
run code through :class:`Kernel`. It launches ipykernel with *this* interpreter
(``sys.executable``), never a kernelspec found on the machine, so the kernel sees
the same packages as domarkx. The environment is built from nothing rather than
copied and filtered: a key that a filter forgot cannot leak.

A kernel lives as long as the process that started it: ipykernel exits when its
parent dies (``JPY_PARENT_PID``) and an ``atexit`` hook shuts down the rest, so
a crashed or finished ``domarkx`` never leaves kernels behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domarkx.errors import DomarkxError

if TYPE_CHECKING:
    from jupyter_client.blocking.client import BlockingKernelClient
    from jupyter_client.manager import KernelManager

RESULT_MIME = "application/vnd.domarkx.result+json"
"""Display-data type a tool runner uses to hand a JSON value back from the kernel."""

INTERRUPT_GRACE = 5.0
"""Seconds a cell gets to stop after an interrupt before the kernel is killed."""

_POLL = 0.25
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_LIVE: set[Kernel] = set()


class KernelDied(DomarkxError):
    """The kernel process ended (or had to be killed) while running a cell."""


def strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


def kernel_env(home: Path) -> dict[str, str]:
    """The whole environment a kernel gets; nothing else from ours reaches it.

    ``PYTHONHASHSEED`` is fixed so that set and dict-of-str iteration order is the
    same when a cell log is replayed.
    """
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "PYTHONPATH": "",
        "PYTHONHASHSEED": "0",
        "TERM": "dumb",
    }


class Capped:
    """Text that keeps its head and tail once it grows past ``limit`` characters.

    Collecting output this way bounds memory even when a cell prints in a loop
    until its time-out.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head = ""
        self.tail = ""
        self.total = 0

    def append(self, text: str) -> None:
        self.total += len(text)
        room = self.limit - len(self.head)
        if room > 0:
            self.head += text[:room]
        self.tail = (self.tail + text)[-self.limit :]

    def text(self) -> str:
        if self.total <= self.limit:
            return self.head
        half = self.limit // 2
        cut = self.total - 2 * half
        return f"{self.head[:half]}\n… [{cut} characters cut] …\n{self.tail[-half:]}"


@dataclass
class CellOutput:
    """What one cell produced, as text a model can read."""

    limit: int
    stdout: Capped = field(init=False)
    stderr: Capped = field(init=False)
    result: Capped = field(init=False)
    error: str | None = None
    """``ename: evalue`` of the exception the cell raised, if any."""
    traceback: str = ""
    timed_out: bool = False
    values: list[Any] = field(default_factory=list)
    """JSON values published with :data:`RESULT_MIME`."""

    def __post_init__(self) -> None:
        self.stdout, self.stderr, self.result = Capped(self.limit), Capped(self.limit), Capped(self.limit)

    def collect(self, msg: dict[str, Any]) -> None:
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "stream":
            (self.stderr if content["name"] == "stderr" else self.stdout).append(content["text"])
        elif kind in ("execute_result", "display_data"):
            data = content.get("data", {})
            if RESULT_MIME in data:
                self.values.append(data[RESULT_MIME])
            elif "text/plain" in data:
                self.result.append(strip_ansi(data["text/plain"]) + "\n")
            else:
                self.result.append(f"<{', '.join(sorted(data))} output not shown>\n")
        elif kind == "error":
            self.error = f"{content['ename']}: {content['evalue']}"
            self.traceback = strip_ansi("\n".join(content.get("traceback", [])))


def _manager() -> KernelManager:
    """A manager whose only kernelspec is ipykernel on this interpreter."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import KernelManager

    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    # IPython's history database is a per-HOME SQLite file we have no use for.
    argv.append("--HistoryManager.enabled=False")
    spec = KernelSpec(argv=argv, display_name="domarkx", language="python")

    class SpecManager(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return spec

    return KernelManager(kernel_name="domarkx", kernel_spec_manager=SpecManager())


class Kernel:
    """One running ipykernel and a blocking client connected to it."""

    def __init__(self, manager: KernelManager, client: BlockingKernelClient) -> None:
        self.manager = manager
        self.client = client

    @classmethod
    def start(cls, *, cwd: Path, home: Path, state_dir: Path, timeout: float = 60.0) -> Kernel:
        """Launch a kernel in ``cwd`` with HOME ``home``; its connection file and log go in ``state_dir``."""
        for path in (cwd, home, state_dir):
            path.mkdir(parents=True, exist_ok=True)
        log_path = state_dir / "kernel.log"
        manager = _manager()
        manager.connection_file = str(state_dir / "kernel.json")
        try:
            with log_path.open("ab") as log:
                manager.start_kernel(env=kernel_env(home), cwd=str(cwd), stdout=log, stderr=log)
            client = manager.client()
            client.start_channels()
            client.wait_for_ready(timeout=timeout)
        except (RuntimeError, OSError) as exc:
            with contextlib.suppress(Exception):
                manager.shutdown_kernel(now=True)
            tail = _tail(log_path)
            raise DomarkxError(
                f"cannot start a Python kernel: {exc}" + (f"\n{tail}" if tail else ""),
                hint=f"check that ipykernel is installed for {sys.executable}",
            ) from exc
        kernel = cls(manager, client)
        _LIVE.add(kernel)
        return kernel

    def is_alive(self) -> bool:
        return bool(self.manager.is_alive())

    def execute(self, code: str, *, timeout: float, limit: int = 20_000, silent: bool = False) -> CellOutput:
        """Run ``code`` and collect its output; interrupt it after ``timeout`` seconds.

        Raises :class:`KernelDied` when the kernel exits mid-cell, or ignores the
        interrupt and has to be killed; the kernel is shut down either way.
        """
        out = CellOutput(limit)
        msg_id = self.client.execute(code, silent=silent, store_history=not silent, allow_stdin=False)
        deadline = time.monotonic() + timeout
        interrupted = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if interrupted:
                    self.shutdown()
                    raise KernelDied("the kernel ignored an interrupt after the time-out and was killed")
                self.manager.interrupt_kernel()
                out.timed_out = interrupted = True
                deadline = time.monotonic() + INTERRUPT_GRACE
                continue
            try:
                msg = self.client.get_iopub_msg(timeout=min(remaining, _POLL))
            except queue.Empty:
                if not self.is_alive():
                    self.shutdown()
                    raise KernelDied("the kernel process exited") from None
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            out.collect(msg)
        self._drain_reply(msg_id)
        return out

    def _drain_reply(self, msg_id: str) -> None:
        """Read the shell reply so replies never pile up unread on the socket."""
        with contextlib.suppress(queue.Empty):
            while self.client.get_shell_msg(timeout=INTERRUPT_GRACE)["parent_header"].get("msg_id") != msg_id:
                pass

    def shutdown(self) -> None:
        """Stop the kernel and release its sockets; safe to call twice."""
        if self not in _LIVE:
            return
        _LIVE.discard(self)
        with contextlib.suppress(Exception):
            self.client.stop_channels()
        with contextlib.suppress(Exception):
            self.manager.shutdown_kernel(now=True)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


@atexit.register
def _shutdown_all() -> None:
    for kernel in list(_LIVE):
        kernel.shutdown()
