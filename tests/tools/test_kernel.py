"""The confined kernel: what its code can reach, and that nothing it starts outlives it.

Tests that need bubblewrap skip outside CI when it cannot run here, and fail
in CI (``CI`` set), where it must.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from domarkx.errors import DomarkxError
from domarkx.tools.kernel import Kernel, KernelDied, confinement_available, kernel_env
from domarkx.workspace.plugins import _sandbox


@pytest.fixture(scope="module")
def bwrap() -> None:
    if confinement_available():
        return
    if os.environ.get("CI"):
        pytest.fail("bubblewrap cannot run here, and CI must test the confined kernel")
    pytest.skip("bubblewrap cannot run here")


@pytest.fixture
def kernel(bwrap: None, tmp_path: Path) -> Iterator[Kernel]:
    started = Kernel.start(cwd=tmp_path / "work", home=tmp_path / "home", state_dir=tmp_path, confined=True)
    yield started
    started.shutdown()


_SET_BY_IPYKERNEL_AND_BASH = {
    "JPY_PARENT_PID", "PWD", "SHLVL", "_", "CLICOLOR", "CLICOLOR_FORCE", "FORCE_COLOR", "GIT_PAGER",
    "MPLBACKEND", "PAGER", "PYDEVD_USE_FRAME_EVAL",
}  # fmt: skip


def stdout(kernel: Kernel, code: str) -> str:
    out = kernel.execute(textwrap.dedent(code), timeout=30)
    assert out.error is None, out.traceback
    return out.stdout.text()


def running(token: str) -> list[int]:
    """Host pids whose command line mentions ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def gone(token: str, within: float = 30.0) -> bool:
    """Whether every process mentioning ``token`` ends (killing is asynchronous; no time is asserted)."""
    deadline = time.monotonic() + within
    while running(token):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def detach(kernel: Kernel) -> str:
    """Start a ``setsid`` child that would outlive an unconfined kernel; return its marker."""
    token = f"{secrets.randbelow(10**6) + 10**6}.5"
    stdout(kernel, f"import subprocess\nsubprocess.Popen(['setsid', 'sleep', '{token}'])")
    deadline = time.monotonic() + 30
    while not running(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running(token), "the detached child never started"
    return token


def test_confined_kernel_sees_only_its_work_dir(kernel: Kernel, tmp_path: Path) -> None:
    secret = Path.home() / f".domarkx-test-secret-{secrets.token_hex(4)}"
    secret.write_text("top secret")
    try:
        out = stdout(
            kernel,
            f"""
            import os, pathlib
            print(os.getcwd(), os.environ['HOME'], sorted(os.environ))
            print(pathlib.Path({str(secret)!r}).exists(), pathlib.Path({str(tmp_path)!r}).exists())
            for target in ('/usr/x', '/etc/x', {kernel.inbox_inside + "/x"!r}):
                try:
                    open(target, 'w')
                except OSError as exc:
                    print('refused', exc.errno)
            open('made-here', 'w').write('ok')
            """,
        )
    finally:
        secret.unlink()
    lines = out.splitlines()
    cwd, home, names = lines[0].split(" ", 2)
    assert (cwd, home) == ("/workspace", "/tmp")
    assert set(eval(names)) <= set(kernel_env("/tmp")) | _SET_BY_IPYKERNEL_AND_BASH
    assert lines[1] == "False False"
    assert lines[2:5] == ["refused 30"] * 3  # EROFS
    assert (tmp_path / "work" / "made-here").read_text() == "ok"


def test_confined_kernel_cannot_read_our_environment(
    bwrap: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    started = Kernel.start(cwd=tmp_path / "w", home=tmp_path / "h", state_dir=tmp_path, confined=True)
    try:
        out = stdout(
            started,
            """
            import os
            leaks = []
            for pid in os.listdir('/proc'):
                if pid.isdigit():
                    try:
                        if b'sk-must-not' in open(f'/proc/{pid}/environ', 'rb').read():
                            leaks.append(pid)
                    except OSError:
                        pass
            print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit())[:3], leaks)
            """,
        )
    finally:
        started.shutdown()
    pids, leaks = out.split("] ")
    assert leaks.strip() == "[]"
    assert os.getpid() not in eval(pids + "]")  # its own pid namespace: domarkx is not there


def test_confined_kernel_has_no_network(kernel: Kernel) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        out = kernel.execute(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)", timeout=30)
    assert out.error is not None
    assert "ConnectionRefused" in out.error or "unreachable" in out.error


def test_shutdown_ends_detached_children(kernel: Kernel) -> None:
    token = detach(kernel)
    kernel.shutdown()
    assert gone(token)


def test_a_cell_that_ignores_the_time_out_is_killed_with_its_children(kernel: Kernel) -> None:
    token = detach(kernel)
    stubborn = "while True:\n    try:\n        __import__('time').sleep(1)\n    except KeyboardInterrupt:\n        pass"
    with pytest.raises(KernelDied, match="ignored an interrupt"):
        kernel.execute(stubborn, timeout=0.5)
    assert gone(token)


def test_an_interrupted_cell_leaves_the_kernel_usable(kernel: Kernel) -> None:
    out = kernel.execute("import time\ntime.sleep(60)", timeout=0.5)
    assert out.timed_out
    assert "KeyboardInterrupt" in (out.error or "")
    assert stdout(kernel, "print('still here')") == "still here\n"


_OWNER = """
import sys, time
from pathlib import Path
from domarkx.tools.kernel import Kernel
base = Path(sys.argv[1])
kernel = Kernel.start(cwd=base / "work", home=base / "home", state_dir=base, confined=True)
out = kernel.execute("import subprocess\\nsubprocess.Popen(['setsid', 'sleep', sys.argv[2]])"
                     .replace("sys.argv[2]", repr(sys.argv[2])), timeout=30)
assert out.error is None, out.traceback
print("started", flush=True)
time.sleep(600)
"""


def test_sigkill_of_domarkx_leaves_nothing_running(bwrap: None, tmp_path: Path) -> None:
    token = f"{secrets.randbelow(10**6) + 10**6}.25"
    with subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path), token], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    ) as owner:
        try:
            assert owner.stdout is not None
            assert owner.stdout.readline() == "started\n"
            assert running(token)
        finally:
            owner.send_signal(signal.SIGKILL)
            owner.wait()
    assert gone(token)
    assert not running(str(tmp_path / "kernel")), "no kernel of the killed process is left"


def test_unconfined_when_asked(tmp_path: Path) -> None:
    started = Kernel.start(cwd=tmp_path / "w", home=tmp_path / "h", state_dir=tmp_path, confined=False)
    try:
        assert not started.confined
        where = stdout(started, "import os\nprint(os.getcwd(), os.environ['HOME'])")
        assert where == f"{tmp_path / 'w'} {tmp_path / 'h'}\n"
    finally:
        started.shutdown()


def test_without_bubblewrap_confined_is_refused_and_auto_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_sandbox, "bwrap_works", lambda: False)
    monkeypatch.setattr(_sandbox, "_warned", set())
    with pytest.raises(DomarkxError, match="bubblewrap cannot run here"):
        Kernel.start(cwd=tmp_path / "w", home=tmp_path / "h", state_dir=tmp_path, confined=True)
    for _ in range(2):
        started = Kernel.start(cwd=tmp_path / "w", home=tmp_path / "h", state_dir=tmp_path)
        assert not started.confined
        started.shutdown()
    err = capsys.readouterr().err
    assert err.count("python kernels run unconfined") == 1
