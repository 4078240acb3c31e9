"""A Jupyter kernel started for domarkx: confined, scrubbed environment, hard time-outs.

Both the ``python`` resource plugin and :class:`~domarkx.tools.executors.JupyterToolExecutor`
run code through :class:`Kernel`. It launches ipykernel with *this* interpreter
(``sys.executable``), never a kernelspec found on the machine, so the kernel sees
the same packages as domarkx. The environment is built from nothing rather than
copied and filtered: a key that a filter forgot cannot leak.

**Confinement.** Where bubblewrap works, the kernel runs in a sandbox like
``local_shell``'s commands (:mod:`domarkx.workspace.plugins._sandbox`): its own
pid, network, IPC and user namespaces, the system and the interpreter's
directories read-only, its work directory read-write at ``/workspace``, a
private ``/tmp`` that is also its ``HOME``, and nothing else of the host (no
home directory, no ``/proc`` of domarkx, so no key in ``/proc/<pid>/environ``).
Jupyter's TCP sockets cannot cross the network namespace, so kernel and client
talk over IPC sockets in a short private directory bound into the sandbox; the
kernel is interrupted by message (signals do not reach it through bubblewrap)
and does not watch its parent's pid (it is not in its namespace): bubblewrap's
``--die-with-parent`` does that job, and when the sandbox's first process dies
the pid namespace takes every process a cell started with it, ``setsid`` or not.

Without bubblewrap the kernel runs unconfined as the user, with the scrubbed
environment only, and domarkx says so once per process on stderr. It then exits
when its parent dies (``JPY_PARENT_PID``), but processes a cell detached from
it survive.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


SANDBOX_HOME = "/tmp"  # noqa: S108 - the sandbox's private tmpfs, not the host's /tmp
"""The confined kernel's HOME: private, empty at every start, never versioned."""
SANDBOX_INBOX = "/run/domarkx/in"
"""Where a confined kernel sees :attr:`Kernel.inbox` (read-only: files domarkx hands in)."""
SANDBOX_OUTBOX = "/run/domarkx/out"
"""Where a confined kernel sees :attr:`Kernel.outbox` (files it hands out, which domarkx checks)."""
_LAUNCH = "from domarkx.tools._kernel_agent import main; main()"
_SOCKET_DIR_MAX = 80
"""IPC socket paths must fit ``sun_path`` (108 bytes) with the ``/k-<port>`` suffix."""


def kernel_env(home: str) -> dict[str, str]:
    """The whole environment a kernel gets; nothing else from ours reaches it.

    ``PYTHONHASHSEED`` is fixed so that set and dict-of-str iteration order is the
    same when cells are run again (replay, recomputation).
    """
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "HOME": home,
        "PYTHONPATH": "",
        "PYTHONHASHSEED": "0",
        "TERM": "dumb",
    }


def confinement_available() -> bool:
    """Whether kernels can be confined here (bubblewrap installed and allowed to run)."""
    from domarkx.workspace.plugins import _sandbox

    return _sandbox.bwrap_works()


def _want_confined(confined: bool | None) -> bool:
    """Resolve ``confined=None`` (auto) and refuse ``True`` where bubblewrap cannot run."""
    from domarkx.workspace.plugins import _sandbox

    if confined is False:
        return False
    if confinement_available():
        return True
    if confined:
        raise DomarkxError(
            "a confined Python kernel was asked for, but bubblewrap cannot run here",
            hint="install bubblewrap (apt-get install bubblewrap)",
        )
    _sandbox.warn_unconfined("bubblewrap (bwrap) is not available", "python kernels")
    return False


@functools.cache
def interpreter_dirs() -> tuple[str, ...]:
    """The directories this interpreter needs, as a kernel started with :func:`kernel_env` sees them.

    They are bound read-only into the sandbox: the prefixes (the binary, the
    standard library), every ``sys.path`` entry the interpreter computes on its
    own (site-packages, ``.pth`` additions such as an editable install) and the
    directory domarkx itself is imported from. The current directory is not
    among them, so a user's home never appears just because domarkx ran there.
    """
    probe = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path[1:]]))"
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env=kernel_env(tempfile.gettempdir()),
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        found: list[str] = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise DomarkxError(f"cannot ask {sys.executable} where its libraries are: {exc}") from exc
    import domarkx

    found.append(str(Path(domarkx.__file__).resolve().parent.parent))
    return tuple(_outermost(os.path.realpath(p) for p in found if p and os.path.exists(p)))


def _outermost(paths: Any) -> list[str]:
    """The paths with those inside another one (or inside a system directory) left out."""
    kept: list[str] = []
    for path in sorted(set(paths)):
        covered = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", *kept)
        if path != "/" and not any(path == c or path.startswith(c.rstrip("/") + "/") for c in covered):
            kept.append(path)
    return kept


@dataclass(frozen=True)
class _Launch:
    """How one kernel process is started: its argv prefix, environment, and the paths it sees."""

    prefix: list[str]
    env: dict[str, str]
    cwd: str
    work: str
    inbox: str
    outbox: str


def _confined_launch(work: Path, sockets: Path, inbox: Path, outbox: Path) -> _Launch:
    from domarkx.workspace.plugins import _sandbox

    argv = _sandbox.base_args()
    for path in interpreter_dirs():
        argv += ["--ro-bind", path, path]
    argv += ["--bind", str(sockets), str(sockets), "--bind", str(work), _sandbox.SANDBOX_WORK]
    argv += ["--ro-bind", str(inbox), SANDBOX_INBOX, "--bind", str(outbox), SANDBOX_OUTBOX]
    argv += ["--chdir", _sandbox.SANDBOX_WORK, *_sandbox.limited()]
    # The kernel cannot see our pid (another namespace): --die-with-parent watches it instead.
    argv += [sys.executable, "-c", _LAUNCH, "-f", "{connection_file}", "--IPKernelApp.parent_handle=0"]
    work_inside = _sandbox.SANDBOX_WORK
    return _Launch(argv, kernel_env(SANDBOX_HOME), "/", work_inside, SANDBOX_INBOX, SANDBOX_OUTBOX)


def _unconfined_launch(work: Path, home: Path, inbox: Path, outbox: Path) -> _Launch:
    argv = [sys.executable, "-c", _LAUNCH, "-f", "{connection_file}"]
    return _Launch(argv, kernel_env(str(home)), str(work), str(work), str(inbox), str(outbox))


def _socket_dir() -> Path:
    """A fresh private directory for the IPC sockets, short enough for ``sun_path``."""
    for base in ("/tmp", tempfile.gettempdir()):  # noqa: S108 - mkdtemp makes a private 0700 directory
        if len(base) < _SOCKET_DIR_MAX - 12 and os.access(base, os.W_OK):
            return Path(tempfile.mkdtemp(prefix="dmx-", dir=base))
    raise DomarkxError("no short writable temporary directory for the kernel's sockets", hint="set TMPDIR=/tmp")


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


def shown(msg: dict[str, Any]) -> str:
    """What a notebook would show of one output message: streamed text, a value's text, a traceback.

    Values and tracebacks are shown too, not only stdout and stderr: a terminal
    that watched a cell's output does not print its result again.
    """
    kind, content = msg["header"]["msg_type"], msg["content"]
    if kind == "stream":
        return str(content["text"])
    data = content.get("data", {}) if kind in ("execute_result", "display_data") else {}
    if "text/plain" in data and RESULT_MIME not in data:  # a tool executor's JSON value is not for people
        return strip_ansi(data["text/plain"]) + "\n"
    if kind == "error":
        return strip_ansi("\n".join(content.get("traceback", []))) + "\n"
    return ""


def _manager(argv: list[str], sockets: Path) -> KernelManager:
    """A manager whose only kernelspec is ``argv``, talking over IPC sockets in ``sockets``."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import KernelManager

    # IPython's history database is a per-HOME SQLite file we have no use for.
    argv = [*argv, "--HistoryManager.enabled=False"]
    spec = KernelSpec(argv=argv, display_name="domarkx", language="python", interrupt_mode="message")

    class SpecManager(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return spec

    manager = KernelManager(
        kernel_name="domarkx", kernel_spec_manager=SpecManager(), transport="ipc", ip=str(sockets / "k")
    )
    manager.connection_file = str(sockets / "kernel.json")
    return manager


class Kernel:
    """One running ipykernel and a blocking client connected to it.

    ``work`` is the kernel's working directory as code in the kernel sees it;
    ``inbox``/``outbox`` are host directories it sees at ``inbox_inside`` (read
    only when confined) and ``outbox_inside``, for handing files in and out.
    """

    def __init__(
        self,
        manager: KernelManager,
        client: BlockingKernelClient,
        launch: _Launch,
        *,
        confined: bool,
        exchange: tuple[Path, Path],
        sockets: Path,
    ) -> None:
        self.manager = manager
        self.client = client
        self.confined = confined
        self.work = launch.work
        self.inbox, self.outbox = exchange
        self.inbox_inside, self.outbox_inside = launch.inbox, launch.outbox
        self._sockets = sockets

    @classmethod
    def start(
        cls,
        *,
        cwd: Path,
        home: Path,
        state_dir: Path,
        confined: bool | None = None,
        timeout: float = 60.0,
    ) -> Kernel:
        """Launch a kernel working in ``cwd``; its connection log and exchange folders go in ``state_dir``.

        ``confined``: ``True`` needs bubblewrap (an error without it), ``False``
        runs unconfined, ``None`` confines where it can and warns where it
        cannot. ``home`` is the HOME of an unconfined kernel (a confined one has
        a private, empty one).
        """
        confine = _want_confined(confined)
        inbox, outbox = state_dir / "inbox", state_dir / "outbox"
        for path in (cwd, home, state_dir):
            path.mkdir(parents=True, exist_ok=True)
        for path in (inbox, outbox):
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
        sockets = _socket_dir()
        launch = (
            _confined_launch(cwd, sockets, inbox, outbox) if confine else _unconfined_launch(cwd, home, inbox, outbox)
        )
        log_path = state_dir / "kernel.log"
        manager = _manager(launch.prefix, sockets)
        try:
            with log_path.open("ab") as log:
                manager.start_kernel(env=launch.env, cwd=launch.cwd, stdout=log, stderr=log)
            client = manager.client()
            client.start_channels()
            client.wait_for_ready(timeout=timeout)
        except (RuntimeError, OSError) as exc:
            with contextlib.suppress(Exception):
                manager.shutdown_kernel(now=True)
            shutil.rmtree(sockets, ignore_errors=True)
            tail = _tail(log_path)
            raise DomarkxError(
                f"cannot start a Python kernel: {exc}" + (f"\n{tail}" if tail else ""),
                hint=f"check that ipykernel is installed for {sys.executable}",
            ) from exc
        kernel = cls(manager, client, launch, confined=confine, exchange=(inbox, outbox), sockets=sockets)
        _LIVE.add(kernel)
        return kernel

    def is_alive(self) -> bool:
        return bool(self.manager.is_alive())

    def execute(
        self,
        code: str,
        *,
        timeout: float,
        limit: int = 20_000,
        silent: bool = False,
        on_output: Callable[[str], None] | None = None,
    ) -> CellOutput:
        """Run ``code`` and collect its output; interrupt it after ``timeout`` seconds.

        ``on_output`` is given what the cell shows as it comes (:func:`shown`),
        uncapped, so a person can watch a long cell. Raises :class:`KernelDied`
        when the kernel exits mid-cell, or ignores the interrupt and has to be
        killed; the kernel is shut down either way.
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
            if on_output is not None and (text := shown(msg)):
                on_output(text)
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
        shutil.rmtree(self._sockets, ignore_errors=True)


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
