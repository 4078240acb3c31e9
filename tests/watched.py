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

    def __init__(self, args: Sequence[str], *, stdin: bytes | None = None) -> None:
        self.proc = subprocess.Popen(
            ["domarkx", *args],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ.copy(),
        )
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()
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

    def signal(self, number: int) -> None:
        self.proc.send_signal(number)

    def finish(self) -> int:
        code = self.proc.wait(timeout=DEADLINE)
        for reader in self._readers:
            reader.join(timeout=DEADLINE)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()
