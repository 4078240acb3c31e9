"""A real ``domarkx`` process whose output a test reads while it runs (to signal it at the right moment).

The deadlines here only bound a test that went wrong; nothing asserts how long anything took.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Self

DEADLINE = 60.0


class Watched:
    """``domarkx ARGS`` in its own process, stdout and stderr collected as they come."""

    def __init__(self, args: Sequence[str], *, stdin: bytes | None = None, more_input: bool = False) -> None:
        """``stdin``: what the process reads, then end of input (``more_input``: :meth:`type` adds more)."""
        self.proc = subprocess.Popen(
            ["domarkx", *args],
            stdin=subprocess.PIPE if stdin is not None or more_input else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
        if stdin is not None or more_input:
            self.type(stdin or b"", close=not more_input)
        self.chunks: dict[str, bytearray] = {"out": bytearray(), "err": bytearray()}
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str, stream: IO[bytes] | None) -> None:
        assert stream is not None
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            with self._lock:
                self.chunks[name] += chunk

    @property
    def out(self) -> str:
        with self._lock:
            return self.chunks["out"].decode("utf-8", "replace")

    @property
    def err(self) -> str:
        with self._lock:
            return self.chunks["err"].decode("utf-8", "replace")

    def wait_for(self, text: str, *, stream: str = "err") -> None:
        """Until ``text`` has been printed on ``stream`` (while the process still runs)."""
        self.wait_until(lambda: text in (self.err if stream == "err" else self.out), f"{text!r} on std{stream}")

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Until ``condition()`` holds; fails if the process ends first."""
        deadline = time.monotonic() + DEADLINE
        while not condition():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.finish()
                raise AssertionError(f"never saw {what}: out={self.out!r} err={self.err!r}")
            time.sleep(0.02)

    def type(self, data: bytes, *, close: bool = False) -> None:
        """Write ``data`` to the process's standard input (and end it)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        if close:
            self.proc.stdin.close()

    def signal(self, number: int) -> None:
        self.proc.send_signal(number)

    def finish(self) -> int:
        code = self.proc.wait(timeout=DEADLINE)
        for reader in self._readers:
            reader.join(timeout=DEADLINE)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()


class OnTerminal:
    """``domarkx ARGS`` on a pseudo-terminal, typed at like a person would (readline sees a real tty)."""

    def __init__(self, args: Sequence[str]) -> None:
        import pty

        self.master, slave = pty.openpty()
        env = {**os.environ, "TERM": "xterm", "COLUMNS": "200", "LINES": "50"}
        self.proc = subprocess.Popen(
            ["domarkx", *args], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.screen = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            with self._lock:
                self.screen += chunk

    @property
    def text(self) -> str:
        with self._lock:
            return self.screen.decode("utf-8", "replace")

    def wait_for(self, text: str, *, count: int = 1) -> None:
        """Until ``text`` has appeared ``count`` times in all that was shown."""
        deadline = time.monotonic() + DEADLINE
        while self.text.count(text) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never saw {text!r} x{count}: {self.text!r}")
            time.sleep(0.02)

    def type(self, keys: str | bytes) -> None:
        os.write(self.master, keys.encode() if isinstance(keys, str) else keys)

    def finish(self) -> int:
        code = self.proc.wait(timeout=DEADLINE)
        self._reader.join(timeout=DEADLINE)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()
