"""Run a shell command with a time-out, capped output and a scrubbed environment.

Portable: standard library only, no domarkx imports. The command runs in its own
process group; on time-out the whole group is killed, and stragglers left in the
background are killed when the command returns, so nothing outlives the call.
Output is read as it comes and only the head and tail of each stream are kept,
so a flood costs neither memory nor the model's context; an ``on_output``
callback sees all of it as it arrives (a terminal showing the command live).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_OUTPUT = 100_000
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_POLL = 0.05
_GRACE = 1.0


def minimal_env(home: str) -> dict[str, str]:
    """An environment that carries nothing from the caller: no API keys, no user home."""
    return {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": home, "TMPDIR": home, "TERM": "dumb"}


def run_command(
    command: str,
    *,
    cwd: str = ".",
    timeout: float = DEFAULT_TIMEOUT,
    max_output: int = DEFAULT_MAX_OUTPUT,
    env: Mapping[str, str] | None = None,
    wrapper: Sequence[str] = (),
    on_output: Callable[[str], None] | None = None,
    input: bytes | None = None,
) -> dict[str, Any]:
    """Run ``command`` with ``bash -c`` in ``cwd``.

    ``env`` defaults to :func:`minimal_env` with a fresh private home that is
    removed afterwards. ``wrapper`` is an argv prefix (a sandbox such as
    bubblewrap) the shell is started through. ``on_output`` is given stdout and
    stderr text as it is produced, uncapped, so a person can watch a long
    command. ``input`` is the command's standard input (``None``: an empty
    one); it is written as the command reads it, under the same time-out, so a
    command that never reads it cannot hang the call. The result has
    ``exit_code`` (``None`` after a time-out), ``stdout``, ``stderr`` and
    ``timed_out``.
    """
    if not isinstance(command, str) or not command.strip():
        raise ValueError("command must be a non-empty string")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    private_home = None
    if env is None:
        private_home = tempfile.mkdtemp(prefix="domarkx-home-")
        env = minimal_env(private_home)
    try:
        return _run([*wrapper, "bash", "-c", command], cwd, env, timeout, max_output, on_output, input)
    finally:
        if private_home is not None:
            shutil.rmtree(private_home, ignore_errors=True)


def _run(
    argv: list[str],
    cwd: str,
    env: Mapping[str, str],
    timeout: float,
    max_output: int,
    on_output: Callable[[str], None] | None,
    data: bytes | None,
) -> dict[str, Any]:
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL if data is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    streams = {
        proc.stdout: _Capped(max_output // 2, on_output),
        proc.stderr: _Capped(max_output // 2, on_output),
    }
    feed = _Feed(proc.stdin, data) if proc.stdin is not None else None
    deadline = time.monotonic() + timeout
    try:
        timed_out = _pump(proc, streams, feed, deadline)
        if not timed_out:
            # The pipes closed, which the shell does a moment before it exits: wait for that
            # before killing leftovers, or the kill could land on the exiting shell.
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        _kill_group(proc)
        if feed is not None:
            feed.close()
        for stream, capped in streams.items():
            stream.close()
            capped.done()
        returncode = proc.wait()
    return {
        "exit_code": None if timed_out else returncode,
        "stdout": streams[proc.stdout].text(),
        "stderr": streams[proc.stderr].text(),
        "timed_out": timed_out,
    }


def _pump(
    proc: subprocess.Popen[bytes], streams: dict[IO[bytes], _Capped], feed: _Feed | None, deadline: float
) -> bool:
    """Read both pipes until they close, writing the input as the command takes it; kill the group at the deadline.

    True if it timed out. Reading and writing in one loop means a command that
    writes a lot before it reads (or reads before it writes) never deadlocks us.
    """
    grace_end: float | None = None
    timed_out = False
    with selectors.DefaultSelector() as sel:
        for stream in streams:
            sel.register(stream, selectors.EVENT_READ)
        if feed is not None:
            sel.register(feed.pipe, selectors.EVENT_WRITE)
        while any(key.fileobj in streams for key in sel.get_map().values()):
            now = time.monotonic()
            if grace_end is None and (now >= deadline or _exited(proc)):
                # The shell is gone (or out of time): kill what it left behind so the pipes close.
                timed_out = now >= deadline and not _exited(proc)
                _kill_group(proc)
                grace_end = now + _GRACE
            if grace_end is not None and now >= grace_end:
                break
            for key, _ in sel.select(_POLL):
                if feed is not None and key.fileobj is feed.pipe:
                    if not feed.write():
                        sel.unregister(feed.pipe)
                        feed.close()
                    continue
                data = os.read(key.fd, 65536)
                if data:
                    streams[key.fileobj].add(data)  # type: ignore[index]
                else:
                    sel.unregister(key.fileobj)
    return timed_out


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has exited, without reaping it (so its group id stays ours)."""
    if proc.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill every process left in the command's group (its id stays reserved while any is alive)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class _Feed:
    """The command's standard input, written in pieces as the pipe takes them (never blocking)."""

    def __init__(self, pipe: IO[bytes], data: bytes | None) -> None:
        self.pipe = pipe
        self.data = memoryview(data or b"")
        self.sent = 0
        os.set_blocking(pipe.fileno(), False)

    def write(self) -> bool:
        """Write what the pipe takes now; False once everything is written or the command closed its end."""
        try:
            self.sent += os.write(self.pipe.fileno(), self.data[self.sent : self.sent + 65536])
        except BlockingIOError:
            return True
        except BrokenPipeError:  # the command stopped reading: the rest is not wanted
            return False
        return self.sent < len(self.data)

    def close(self) -> None:
        """End of input for the command (safe to call twice)."""
        with contextlib.suppress(OSError):
            self.pipe.close()


class _Capped:
    """Keeps the first and last ``half`` bytes of a stream and counts what it dropped.

    Everything read is also passed on, decoded, to ``watch``; the decoder is
    incremental so a character split between two reads is not garbled.
    """

    def __init__(self, half: int, watch: Callable[[str], None] | None = None) -> None:
        self.half = max(half, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.watch = watch
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, data: bytes) -> None:
        if self.watch is not None:
            text = self.decoder.decode(data)
            if text:
                self.watch(text)
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    def done(self) -> None:
        """Pass on what the decoder still holds (an incomplete character at the very end)."""
        if self.watch is not None:
            rest = self.decoder.decode(b"", final=True)
            if rest:
                self.watch(rest)

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        if dropped <= 0:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", errors="replace")
        head = bytes(self.head).decode("utf-8", errors="replace")
        tail = bytes(self.tail).decode("utf-8", errors="replace")
        return f"{head}\n[… truncated {dropped} bytes …]\n{tail}"
