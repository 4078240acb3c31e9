"""One table of attacks on every plugin, each made through ``WorkspaceManager.call`` as a model would.

Every row is *refused* (an ``ok=False`` result whose text says why) or
*contained* (the call succeeds, and what it reached for is absent, capped or
killed). The attacks: paths out of the tree (``..``, absolute, a symlink to ``/``,
a hard link to a file outside, ``/proc/self/root``), the user's API keys and
home directory in the environment, fork bombs, runaway statements and output
floods. Rows exist where the attack means something at the plugin's boundary:
``python`` has no file tools (its kernel is not a sandbox, as docs/plugins.md
says), a ``sqlite`` statement cannot read the environment, and a
``docker_sandbox`` container is its own boundary, so only its path checks, its
environment and its output cap are the plugin's to hold.

Fork bombs here are bounded (a few hundred shells at most): an unbounded one run
as root, whom the kernel exempts from process limits, could take the machine
down. The test kills whatever a row left behind, whatever the verdict.
"""

from __future__ import annotations

import errno
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from domarkx.data.models import WorkspaceConfig
from domarkx.data.store import Store
from domarkx.workspace.manager import ToolOutcome, Workspace, WorkspaceManager
from domarkx.workspace.plugins import _sandbox
from workspace.fake_docker import FakeDockerEngine

SECRETS = {
    "OPENAI_API_KEY": "sk-escape-test-openai-7f3a9c",
    "ANTHROPIC_API_KEY": "sk-ant-escape-test-41d2e8",
    "AWS_SECRET_ACCESS_KEY": "aws-escape-test-secret-9b0c55",
}
FLOOD = 50_000_000
"""Bytes a flooding row tries to print."""
HANG = 60
"""Seconds after which a tool call counts as hung (no call in the table needs more than a few)."""

CONFIGS: dict[str, dict[str, Any]] = {
    "local_shell:none": {"type": "local_shell", "sandbox": "none", "timeout": 20},
    "local_shell:bwrap": {"type": "local_shell", "sandbox": "bwrap", "timeout": 20},
    "python": {"type": "python", "timeout": 20},
    "sqlite": {"type": "sqlite", "timeout": 2, "setup": "CREATE TABLE t(x);"},
    "docker_sandbox": {"type": "docker_sandbox", "image": "alpine:3"},
}


@dataclass
class Lab:
    """What a row works with: the manager, its workspace, and the things it must not reach."""

    manager: WorkspaceManager
    workspace: Workspace
    user_home: Path
    outside: Path
    token: str
    engine: FakeDockerEngine | None
    cleanups: list[Callable[[], object]] = field(default_factory=list)

    @property
    def work(self) -> Path:
        """A local_shell resource's work tree."""
        plugin: Any = self.manager.plugin(self.workspace.resources[0].type)
        return Path(plugin.work_dir(self.workspace.resources[0].id))


Check = Callable[[Lab, ToolOutcome], None]


@dataclass(frozen=True)
class Row:
    plugin: str
    attack: str
    tool: str
    arguments: Callable[[Lab], dict[str, Any]]
    verdict: Literal["refused", "contained"]
    says: str = ""
    """Words the result text must hold."""
    prepare: Callable[[Lab], None] | None = None
    check: Check | None = None
    marks: tuple[pytest.MarkDecorator, ...] = field(default=())
    config: dict[str, Any] = field(default_factory=dict)
    """Options added to the plugin's config in :data:`CONFIGS` for this row."""

    @property
    def id(self) -> str:
        return f"{self.plugin}/{self.attack}"


def args(**arguments: Any) -> Callable[[Lab], dict[str, Any]]:
    return lambda lab: arguments


# -- preparations and checks ---------------------------------------------------------


def symlink_to_root(lab: Lab) -> None:
    (lab.work / "root").symlink_to("/")


def symlink_to_proc_root(lab: Lab) -> None:
    (lab.work / "proc-root").symlink_to("/proc/self/root")


def hard_link_out(lab: Lab) -> None:
    try:
        os.link(lab.outside, lab.work / "linked.txt")
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        pytest.skip("the workspace and the test's files are on different file systems: no hard link can cross")


def outside_unchanged(lab: Lab, outcome: ToolOutcome) -> None:
    assert lab.outside.read_text() == "outside the workspace\n"


def assert_stdout(outcome: ToolOutcome, expected: str) -> None:
    assert outcome.ok and outcome.output["stdout"] == expected, outcome.text


def no_user_environment(lab: Lab, outcome: ToolOutcome) -> None:
    assert outcome.ok, outcome.text
    assert str(lab.user_home) not in outcome.text
    assert "home-marker" not in outcome.text
    assert "HOME" in outcome.text  # the command did print its environment


def killed_with_everything_it_started(lab: Lab, outcome: ToolOutcome) -> None:
    assert outcome.ok and outcome.output["timed_out"] is True, outcome.text
    assert "[timed out: the command was killed]" in outcome.text
    assert_no_process_left(lab.token)


def nothing_outlives_the_call(lab: Lab, outcome: ToolOutcome) -> None:
    assert outcome.ok, outcome.text
    assert_no_process_left(lab.token)


def capped(limit: int, marker: str) -> Check:
    def check(lab: Lab, outcome: ToolOutcome) -> None:
        assert outcome.ok, outcome.text[:200]
        assert marker in outcome.text
        assert len(outcome.text) < limit
        if isinstance(outcome.output, dict) and "exit_code" in outcome.output:
            assert outcome.output["exit_code"] == 0 and not outcome.output["timed_out"]

    return check


def kernel_children_end_with_the_session(lab: Lab, outcome: ToolOutcome) -> None:
    assert outcome.ok, outcome.text
    assert "timed out" in outcome.text
    lab.manager.close(lab.workspace)  # what the end of every domarkx command does
    assert_no_process_left(lab.token)


def engine_got_no_host_environment(lab: Lab, outcome: ToolOutcome) -> None:
    assert outcome.ok, outcome.text
    assert outcome.output["stdout"] == "[][][]\n"
    assert lab.engine is not None
    for container in lab.engine.containers.values():
        env = " ".join(container.create_body.get("Env") or [])
        assert not any(secret in env for secret in SECRETS.values())


def make_fifo(lab: Lab) -> None:
    os.mkfifo(lab.work / "pipe")


def unchanged_since_commit(lab: Lab, outcome: ToolOutcome) -> None:
    assert sorted(p.name for p in lab.work.iterdir()) == [], "the call's files were not undone"


def root_only_file(lab: Lab) -> None:
    """A file only root may read, where the sandbox sees the system (as root; others cannot make one)."""
    if os.geteuid() != 0:
        return
    secret = Path("/etc") / f"domarkx-root-only-{lab.token}"
    secret.write_text(f"secret-content-{lab.token}\n")
    secret.chmod(0o600)
    lab.cleanups.append(secret.unlink)


def read_nothing_root_only(lab: Lab, outcome: ToolOutcome) -> None:
    assert outcome.ok, outcome.text
    assert f"secret-content-{lab.token}" not in outcome.text
    if os.geteuid() == 0:
        assert outcome.output["stdout"].split() == [str(_sandbox.SANDBOX_UID)], outcome.text
        assert f"domarkx-root-only-{lab.token}: Permission denied" in outcome.output["stderr"], outcome.text


def view_calling_fts3_tokenizer(lab: Lab) -> None:
    made = lab.manager.call(lab.workspace, "execute", {"sql": "CREATE VIEW v AS SELECT fts3_tokenizer('simple') AS p"})
    assert made.ok, made.text


def write_big_file(lab: Lab) -> None:
    outcome = lab.manager.call(lab.workspace, "write_file", {"path": "big.txt", "content": "z" * 5_000_000})
    assert outcome.ok, outcome.text


class Hung(BaseException):
    """Raised by the alarm in a call that blocks (a BaseException: the manager turns Exceptions into results)."""


def call_or_hang(lab: Lab, tool: str, arguments: dict[str, Any]) -> ToolOutcome:
    """The call's outcome; a call still blocked after :data:`HANG` s (a FIFO waiting for a writer) fails the row."""

    def interrupt(signum: int, frame: object) -> None:
        raise Hung

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(HANG)
    try:
        return lab.manager.call(lab.workspace, tool, arguments)
    except Hung:
        pytest.fail(f"{tool} was still blocked after {HANG} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- processes -------------------------------------------------------------------------


def processes_with(token: str) -> list[int]:
    """Live processes whose command line holds ``token`` (zombies excluded: they are dead)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if token.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def assert_no_process_left(token: str) -> None:
    """Killed processes may take a moment to be reaped; anything still alive after that escaped."""
    deadline = time.monotonic() + 15
    while (left := processes_with(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], f"{len(left)} process(es) outlived the call"


# -- the table -------------------------------------------------------------------------

BOMB = "b(){{ [ $1 -lt 6 ] && {{ b $(($1+1)) & b $(($1+1)) & }}; exec -a {token} sleep 300; }}; b 0"
"""A fork bomb that stops at 2^7 processes, each left sleeping under a name the test can find:
the time-out must kill them all."""

needs_bwrap = pytest.mark.bwrap


def local_shell_rows(mode: str) -> list[Row]:
    plugin = f"local_shell:{mode}"
    marks = (needs_bwrap,) if mode == "bwrap" else ()
    env_command = 'env; echo "HOME=$HOME"; ls -A "$HOME"'
    rows = [
        Row(plugin, "read ../", "read_file", args(path="../../../../etc/passwd"), "refused", "outside the workspace"),
        Row(plugin, "read absolute", "read_file", args(path="/etc/passwd"), "refused", "is absolute"),
        Row(plugin, "write absolute", "write_file", args(path="/tmp/x", content="x"), "refused", "is absolute"),
        Row(plugin, "read /proc/self/root", "read_file", args(path="/proc/self/root/etc/passwd"), "refused"),
        Row(
            plugin,
            "read via symlink to /",
            "read_file",
            args(path="root/etc/passwd"),
            "refused",
            "outside the workspace",
            prepare=symlink_to_root,
        ),
        Row(
            plugin,
            "write via symlink to /",
            "write_file",
            args(path="root/tmp/escaped", content="x"),
            "refused",
            "outside the workspace",
            prepare=symlink_to_root,
        ),
        Row(
            plugin,
            "read via symlink to /proc/self/root",
            "read_file",
            args(path="proc-root/etc/passwd"),
            "refused",
            "outside the workspace",
            prepare=symlink_to_proc_root,
        ),
        Row(
            plugin,
            "read hard link out",
            "read_file",
            args(path="linked.txt"),
            "refused",
            "hard links",
            prepare=hard_link_out,
        ),
        Row(
            plugin,
            "write hard link out",
            "write_file",
            args(path="linked.txt", content="changed"),
            "refused",
            "hard links",
            prepare=hard_link_out,
            check=outside_unchanged,
        ),
        Row(
            plugin,
            "edit hard link out",
            "edit_file",
            args(path="linked.txt", old_text="outside", new_text="inside"),
            "refused",
            "hard links",
            prepare=hard_link_out,
            check=outside_unchanged,
        ),
        Row(
            plugin,
            "environment and home",
            "run_command",
            args(command=env_command),
            "contained",
            check=no_user_environment,
        ),
        Row(
            plugin,
            "fork bomb",
            "run_command",
            lambda lab: {"command": BOMB.format(token=lab.token), "timeout": 2},
            "contained",
            check=killed_with_everything_it_started,
        ),
        Row(
            plugin,
            "output flood",
            "run_command",
            args(command=f"yes | head -c {FLOOD}"),
            "contained",
            check=capped(110_000, "truncated"),
        ),
        Row(
            plugin,
            "stderr flood",
            "run_command",
            args(command=f"yes | head -c {FLOOD} >&2"),
            "contained",
            check=capped(110_000, "truncated"),
        ),
    ]
    for tool, arguments in (
        ("read_file", {"path": "pipe"}),
        ("write_file", {"path": "pipe", "content": "x"}),
        ("edit_file", {"path": "pipe", "old_text": "a", "new_text": "b"}),
    ):
        rows.append(Row(plugin, f"{tool} on a FIFO", tool, args(**arguments), "refused", "is a FIFO", make_fifo))
    rows.append(
        Row(
            plugin,
            "outgrow max_size",
            "run_command",
            args(command="head -c 300000 /dev/zero > big; yes > flood; echo made them"),
            "refused",
            "max_size of 100000 bytes",
            check=unchanged_since_commit,
            config={"max_size": 100_000},
        )
    )
    rows += (
        []
        if mode != "bwrap"
        else [  # unconfined, a command reads what you can: as root, everything
            Row(
                plugin,
                "read root-only files",
                "run_command",
                lambda lab: {"command": f"cat /etc/shadow /etc/domarkx-root-only-{lab.token}; id -u"},
                "contained",
                prepare=root_only_file,
                check=read_nothing_root_only,
            )
        ]
    )
    rows.append(
        Row(
            plugin,
            "time-out dodged with NaN",
            "run_command",
            args(command="sleep 300", timeout=float("nan")),
            "refused",
            "timeout must be a positive number",
        )
    )
    if mode == "bwrap":  # unconfined, a process that leaves the group is documented to survive
        rows.append(
            Row(
                plugin,
                "process limit",
                "run_command",
                args(command="ulimit -u"),
                "contained",
                str(_sandbox.MAX_PROCESSES),
                check=lambda lab, outcome: assert_stdout(outcome, f"{_sandbox.MAX_PROCESSES}\n"),
            )
        )
        rows.append(
            Row(
                plugin,
                "daemon via setsid",
                "run_command",
                lambda lab: {"command": f"setsid bash -c 'exec -a {lab.token} sleep 300' & echo started"},
                "contained",
                check=nothing_outlives_the_call,
            )
        )
    return [Row(**{**row.__dict__, "marks": marks}) for row in rows]


PYTHON_ROWS = [
    Row(
        "python",
        "environment and home",
        "execute_python",
        args(code="import os, pathlib; print(dict(os.environ)); print(sorted(os.listdir(pathlib.Path.home())))"),
        "contained",
        check=no_user_environment,
    ),
    Row(
        "python",
        "environment of a subprocess",
        "execute_python",
        args(code="import subprocess; print(subprocess.run(['env'], capture_output=True, text=True).stdout)"),
        "contained",
        check=no_user_environment,
    ),
    Row(
        "python",
        "fork bomb",
        "execute_python",
        lambda lab: {
            "code": "import subprocess\n"
            f"kids = [subprocess.Popen(['bash', '-c', 'exec -a {lab.token} sleep 300']) for _ in range(20)]\n"
            "while True:\n    pass\n",
            "timeout": 2,
        },
        "contained",
        check=kernel_children_end_with_the_session,
    ),
    Row(
        "python",
        "time-out dodged with NaN",
        "execute_python",
        args(code="while True: pass", timeout=float("nan")),
        "refused",
        "bad arguments",
    ),
    Row(
        "python",
        "output flood",
        "execute_python",
        args(code=f"print('x' * {FLOOD})"),
        "contained",
        check=capped(25_000, "characters cut"),
    ),
]

SQLITE_ROWS = [
    Row("sqlite", "attach a file", "execute", args(sql="ATTACH '/etc/passwd' AS p"), "refused", "not authorized"),
    Row(
        "sqlite",
        "leak a library address with fts3_tokenizer",
        "query",
        args(sql="SELECT hex(fts3_tokenizer('simple'))"),
        "refused",
        "not authorized",
    ),
    Row(
        "sqlite",
        "fts3_tokenizer hidden in a view",
        "query",
        args(sql="SELECT * FROM v"),
        "refused",
        "fts3_tokenizer",
        prepare=view_calling_fts3_tokenizer,
    ),
    Row("sqlite", "writable schema", "execute", args(sql="PRAGMA writable_schema = ON"), "refused", "not authorized"),
    Row(
        "sqlite",
        "process-wide temp directory",
        "execute",
        args(sql="PRAGMA temp_store_directory = '/tmp'"),
        "refused",
        "not authorized",
    ),
    Row("sqlite", "mapped file", "execute", args(sql="PRAGMA mmap_size = 1000000"), "refused", "not authorized"),
    Row("sqlite", "attach ../", "execute", args(sql="ATTACH '../../other.db' AS p"), "refused", "not authorized"),
    Row("sqlite", "vacuum into", "execute", args(sql="VACUUM INTO '/tmp/escaped.db'"), "refused", "not authorized"),
    Row(
        "sqlite",
        "load an extension",
        "query",
        args(sql="SELECT load_extension('/lib/x.so')"),
        "refused",
        "not authorized",
    ),
    Row(
        "sqlite",
        "runaway statement",
        "query",
        args(sql="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"),
        "refused",
        "stopped after 2 s",
    ),
    Row(
        "sqlite",
        "text flood",
        "query",
        args(sql=f"SELECT printf('%.*c', {FLOOD}, 'x')"),
        "contained",
        check=capped(110_000, "more characters cut"),
    ),
    Row(
        "sqlite",
        "blob flood",
        "query",
        args(sql=f"SELECT zeroblob({FLOOD})"),
        "contained",
        check=capped(110_000, "cut_bytes"),
    ),
    Row(
        "sqlite",
        "row flood",
        "query",
        args(
            sql="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000)"
            " SELECT x, printf('%.*c', 1000, 'y') FROM c"
        ),
        "contained",
        check=capped(110_000, "(truncated)"),
    ),
]

DOCKER_ROWS = [
    Row("docker_sandbox", "read ../", "read_file", args(path="../etc/passwd"), "refused", "outside the working"),
    Row("docker_sandbox", "read absolute", "read_file", args(path="/etc/passwd"), "refused", "outside the working"),
    Row(
        "docker_sandbox",
        "write /proc/self/root",
        "write_file",
        args(path="/proc/self/root/etc/passwd", content="x"),
        "refused",
        "outside the working",
    ),
    Row("docker_sandbox", "list ..", "list_dir", args(path=".."), "refused", "outside the working"),
    Row(
        "docker_sandbox",
        "environment",
        "run_command",
        args(command="echo [$OPENAI_API_KEY][$ANTHROPIC_API_KEY][$AWS_SECRET_ACCESS_KEY]"),
        "contained",
        check=engine_got_no_host_environment,
    ),
    Row(
        "docker_sandbox",
        "output flood",
        "run_command",
        args(command="cat big.txt"),
        "contained",
        prepare=write_big_file,
        check=capped(25_000, "characters cut"),
    ),
]

ROWS = [*local_shell_rows("none"), *local_shell_rows("bwrap"), *PYTHON_ROWS, *SQLITE_ROWS, *DOCKER_ROWS]


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    row: Row = request.param
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    (user_home / "home-marker").write_text("the user's own file\n")
    monkeypatch.setenv("HOME", str(user_home))
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    outside = tmp_path / "outside.txt"
    outside.write_text("outside the workspace\n")
    token = f"domarkx-escape-{uuid.uuid4().hex}"
    engine = None
    if row.plugin == "docker_sandbox":
        engine = FakeDockerEngine({"alpine:3": {"/": None, "/bin": None, "/etc": None}}).__enter__()
        monkeypatch.setenv("DOCKER_HOST", engine.url)
    store = Store()
    manager = WorkspaceManager(store)
    config = WorkspaceConfig.model_validate({"resources": [{**CONFIGS[row.plugin], **row.config}]})
    workspace = manager.create(config)
    lab = Lab(manager, workspace, user_home, outside, token, engine)
    try:
        yield lab
    finally:
        for cleanup in lab.cleanups:
            cleanup()
        manager.destroy(workspace)
        store.close()
        for pid in processes_with(token):  # a failed row must not leave a bomb behind
            os.kill(pid, signal.SIGKILL)
        if engine is not None:
            engine.__exit__(None, None, None)


@pytest.mark.parametrize("lab", [pytest.param(r, id=r.id, marks=r.marks) for r in ROWS], indirect=True)
def test_attack_is_refused_or_contained(lab: Lab, request: pytest.FixtureRequest) -> None:
    row: Row = request.node.callspec.params["lab"]
    if row.prepare is not None:
        row.prepare(lab)

    outcome = call_or_hang(lab, row.tool, row.arguments(lab))

    if row.verdict == "refused":
        assert outcome.ok is False, outcome.text[:300]
        assert outcome.text.startswith("error: ")
        assert "\n" not in outcome.text.strip()
    assert row.says in outcome.text, outcome.text[:300]
    for secret in SECRETS.values():
        assert secret not in outcome.text
    if row.check is not None:
        row.check(lab, outcome)
