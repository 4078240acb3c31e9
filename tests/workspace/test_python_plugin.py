"""The ``python`` plugin: a real ipykernel per resource, versioned by checkpoints of its files and variables.

Each kernel start costs about a second, so tests that only read output share
one resource; tests about versions and restarts get their own.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from domarkx import _entrypoints
from domarkx.data.store import Store
from domarkx.errors import PathEscapeError, ReferenceNotFound, UsageError
from domarkx.workspace.plugin import PluginContext, ToolError, streaming_to
from domarkx.workspace.plugins.python import PythonPlugin


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginContext]:
    home = tmp_path_factory.mktemp("python-plugin")
    store = Store(home)
    yield PluginContext(home=home, store=store)
    store.close()


@pytest.fixture(scope="module")
def plugin(context: PluginContext) -> PythonPlugin:
    return PythonPlugin(context)


@pytest.fixture
def resource(plugin: PythonPlugin) -> Iterator[str]:
    created = plugin.create_resource({})
    yield created.id
    plugin.destroy_resource(created.id)


@pytest.fixture(scope="module")
def shared(plugin: PythonPlugin) -> Iterator[str]:
    """One resource for the tests that only look at a call's output."""
    created = plugin.create_resource({"max_output": 400, "timeout": 20})
    yield created.id
    plugin.destroy_resource(created.id)


def run(plugin: PythonPlugin, resource_id: str, code: str, **kwargs: float) -> str:
    result = plugin.execute_tool(resource_id, "execute_python", code=code, **kwargs)
    assert isinstance(result, str)
    return result


def test_registered_under_its_entry_point() -> None:
    assert _entrypoints.load(_entrypoints.PLUGINS, "python", what="plugin") is PythonPlugin
    assert [t.name for t in PythonPlugin.describe_tools()] == ["execute_python"]


def test_commit_then_load_brings_kernel_variables_back(plugin: PythonPlugin, resource: str) -> None:
    run(plugin, resource, "x = 1\nitems = [1, 2]\ndef double(n):\n    return 2 * n")
    first = plugin.commit_version(resource)
    assert plugin.commit_version(resource) == first, "an unchanged resource commits to the same id"
    run(plugin, resource, "x = 99\nitems.append(3)\nextra = 'later'")
    second = plugin.commit_version(resource)
    assert second != first

    plugin.load_version(resource, first)
    assert plugin.get_version(resource) == first
    assert run(plugin, resource, "x, items, double(21), 'extra' in dir()") == "[result]\n(1, [1, 2], 42, False)"

    plugin.load_version(resource, second)
    assert run(plugin, resource, "x, items, extra") == "[result]\n(99, [1, 2, 3], 'later')"


def test_a_version_loads_into_another_resource(plugin: PythonPlugin, resource: str) -> None:
    run(plugin, resource, "answer = 6 * 7")
    version = plugin.commit_version(resource)
    other = plugin.create_resource({}).id
    try:
        plugin.load_version(other, version)
        assert run(plugin, other, "answer") == "[result]\n42"
    finally:
        plugin.destroy_resource(other)


def test_a_new_process_replays_uncommitted_cells_and_says_so(
    plugin: PythonPlugin, context: PluginContext, resource: str
) -> None:
    run(plugin, resource, "import random\nrandom.seed(7)\ndraw = random.random()\nnames = {'b', 'a', 'c'}")
    before = run(plugin, resource, "draw, list(names)")
    plugin.close(resource)  # what a finished domarkx process leaves: state on disk, no kernel
    again = PythonPlugin(context)
    assert run(again, resource, "draw, list(names)") == before + (
        "\n[note]\n2 cells run since the last version were replayed"
    )


def first_count(plugin: PythonPlugin) -> str:
    """What ``execution_count`` says in the first cell of a kernel that ran nothing before."""
    fresh = plugin.create_resource({}).id
    try:
        return run(plugin, fresh, "get_ipython().execution_count")
    finally:
        plugin.destroy_resource(fresh)


def test_a_new_process_restores_the_version_without_running_cells(
    plugin: PythonPlugin, context: PluginContext, resource: str
) -> None:
    run(plugin, resource, "import random, time\ndraw = random.random()\nstamp = time.time()")
    run(plugin, resource, "open('drawn.txt', 'w').write(repr(draw))")
    recorded = run(plugin, resource, "draw, stamp")
    plugin.commit_version(resource)
    plugin.close(resource)
    again = PythonPlugin(context)
    assert run(again, resource, "get_ipython().execution_count") == first_count(again), "no cell ran before"
    assert run(again, resource, "draw, stamp") == recorded


def test_output_sections(plugin: PythonPlugin, shared: str) -> None:
    out = run(plugin, shared, "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\n40 + 2")
    assert out == "[stdout]\nto out\n[stderr]\nto err\n[result]\n42"
    assert run(plugin, shared, "quiet = 1") == "(no output)"


def test_errors_come_back_as_text_without_colour_codes(plugin: PythonPlugin, shared: str) -> None:
    out = run(plugin, shared, "print('before')\n1 / 0")
    assert out.startswith("[stdout]\nbefore\n[error]\n")
    assert "ZeroDivisionError: division by zero" in out
    assert "\x1b[" not in out


def test_long_output_keeps_head_and_tail(plugin: PythonPlugin, shared: str) -> None:
    out = run(plugin, shared, "print('HEAD' + 'x' * 5000 + 'TAIL')")
    assert out.startswith("[stdout]\nHEAD")
    assert out.endswith("TAIL")
    assert "characters cut" in out
    assert len(out) < 600


def test_kernel_sees_no_secrets_and_works_in_its_own_directory(
    plugin: PythonPlugin, context: PluginContext, shared: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    plugin.commit_version(shared)
    plugin.close(shared)  # the kernel starts again under the patched environment
    out = run(plugin, shared, "import os\nprint(repr(os.environ.get('OPENAI_API_KEY')))\n!echo \"[$OPENAI_API_KEY]\"")
    assert out == "[stdout]\nNone\n[]"
    kernel = plugin.kernel(shared)
    assert run(plugin, shared, "import os; os.getcwd()") == f"[result]\n{kernel.work!r}"
    run(plugin, shared, "open('here.txt', 'w').write('x')")
    assert (context.home / "resources" / shared / "work" / "here.txt").read_text() == "x"


def test_time_out_interrupts_the_cell_and_keeps_it_out_of_the_history(
    plugin: PythonPlugin, context: PluginContext, shared: str
) -> None:
    cells_file = context.home / "resources" / shared / "cells.json"
    logged = len(json.loads(cells_file.read_text()))
    out = run(plugin, shared, "import time\ntime.sleep(30)", timeout=0.5)
    assert "KeyboardInterrupt" in out
    assert "timed out after 0.5 s" in out
    assert len(json.loads(cells_file.read_text())) == logged
    assert run(plugin, shared, "'still here'") == "[result]\n'still here'"


def test_kernel_death_is_a_tool_error_and_the_next_call_recovers(plugin: PythonPlugin, resource: str) -> None:
    run(plugin, resource, "kept = 'yes'")
    with pytest.raises(ToolError, match="kernel died"):
        run(plugin, resource, "import os\nos._exit(1)")
    assert run(plugin, resource, "kept") == "[result]\n'yes'\n[note]\n1 cell run since the last version was replayed"


def test_files_are_versioned_with_the_variables(plugin: PythonPlugin, context: PluginContext, resource: str) -> None:
    work = context.home / "resources" / resource / "work"
    (work / "outside.txt").write_text("made outside the kernel")
    run(plugin, resource, "text = open('outside.txt').read()\nopen('inside.txt', 'w').write('v1')")
    first = plugin.commit_version(resource)
    run(plugin, resource, "open('inside.txt', 'w').write('v2')\nimport os\nos.remove('outside.txt')\ntext = 'gone'")
    plugin.commit_version(resource)
    plugin.load_version(resource, first)
    assert (work / "inside.txt").read_text() == "v1"
    assert (work / "outside.txt").read_text() == "made outside the kernel"
    assert run(plugin, resource, "text") == "[result]\n'made outside the kernel'"


def test_bad_config_arguments_and_versions(plugin: PythonPlugin, context: PluginContext, resource: str) -> None:
    with pytest.raises(UsageError, match="timout"):
        plugin.create_resource({"timout": 5})
    with pytest.raises(ToolError, match="no tool 'run_command'"):
        plugin.execute_tool(resource, "run_command", command="ls")
    with pytest.raises(ToolError, match="bad arguments"):
        plugin.execute_tool(resource, "execute_python")
    with context.store.write():
        not_cells = context.store.put_blob(b'{"a": 1}')
    with pytest.raises(UsageError, match="not a python resource version"):
        plugin.load_version(resource, not_cells)
    with pytest.raises(ReferenceNotFound):
        plugin.load_version(resource, "sha256:" + "0" * 64)


def test_destroy_removes_the_resource_directory(plugin: PythonPlugin, context: PluginContext) -> None:
    created = plugin.create_resource({}).id
    folder: Path = context.home / "resources" / created
    assert folder.is_dir()
    plugin.destroy_resource(created)
    assert not folder.exists()
    with pytest.raises(UsageError):
        plugin.get_version(created)


def test_sandbox_bwrap_is_refused_where_it_cannot_run(plugin: PythonPlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    from domarkx.workspace.plugins import _sandbox

    monkeypatch.setattr(_sandbox, "bwrap_works", lambda: False)
    with pytest.raises(UsageError, match="bubblewrap cannot run here"):
        plugin.create_resource({"sandbox": "bwrap"})
    assert PythonPlugin.powers({"sandbox": "none"}) == ["sandbox: none (the kernel runs unconfined, as you)"]
    assert PythonPlugin.powers({}) == []


# -- domarkx cp: the kernel's work dir is hostile ground -------------------------------------------


def test_cp_keeps_a_link_out_of_the_work_dir_a_link(plugin: PythonPlugin, resource: str, tmp_path: Path) -> None:
    """A symlink the kernel made to a host directory is copied as a link, and no path passes through it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host file")
    run(plugin, resource, f"import os\nos.symlink({str(outside)!r}, 'esc')\nopen(b'caf\\xe9.txt', 'wb').write(b'odd')")
    given = tmp_path / "given.txt"
    given.write_text("planted")

    with pytest.raises(PathEscapeError, match="esc is a symlink"):
        plugin.copy_out(resource, b"esc/secret.txt", tmp_path / "stolen.txt")
    with pytest.raises(PathEscapeError, match="esc is a symlink"):
        plugin.copy_in(resource, given, b"esc/planted.txt")
    with pytest.raises(PathEscapeError, match="leaves the work tree"):
        plugin.copy_out(resource, b"../state.json", tmp_path / "state.json")
    plugin.copy_out(resource, b"esc", tmp_path / "link")
    plugin.copy_out(resource, b"caf\xe9.txt", tmp_path)

    assert os.readlink(tmp_path / "link") == str(outside)
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (tmp_path / os.fsdecode(b"caf\xe9.txt")).read_bytes() == b"odd"
    assert not (tmp_path / "stolen.txt").exists()


def test_cp_refuses_a_fifo_either_way(plugin: PythonPlugin, resource: str, tmp_path: Path) -> None:
    """Reading a FIFO would block ``domarkx cp`` forever: it is refused before anything is written."""
    run(plugin, resource, "import os\nos.makedirs('d')\nopen('d/a.txt', 'w').write('a')\nos.mkfifo('d/pipe')")
    host_fifo = tmp_path / "host-pipe"
    os.mkfifo(host_fifo)

    with pytest.raises(UsageError, match=r"^d/pipe is not a regular file, directory or symlink: not copied$"):
        plugin.copy_out(resource, b"d/pipe", tmp_path / "out")
    with pytest.raises(UsageError, match=r"^d/pipe is not a regular file"):
        plugin.copy_out(resource, b"d", tmp_path / "out")
    with pytest.raises(UsageError, match="host-pipe is not a regular file"):
        plugin.copy_in(resource, host_fifo, b"pipe")

    assert not (tmp_path / "out").exists()
    assert run(plugin, resource, "sorted(os.listdir('.'))") == "[result]\n['d']"


# -- prune ---------------------------------------------------------------------------------------------


def git_objects(plugin: PythonPlugin) -> int:
    out = subprocess.run(
        ["git", "count-objects", "-v"],
        env={"GIT_DIR": str(plugin._git.git_dir), "PATH": os.environ["PATH"]},
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    fields = dict(line.split(": ") for line in out.splitlines())
    return int(fields["count"]) + int(fields["in-pack"])


def test_collect_drops_the_files_no_live_version_or_index_needs(tmp_path: Path) -> None:
    """Files of dropped versions leave the git store; those of live ones and those staged in an index stay."""
    with Store(tmp_path / "home") as store:
        plugin = PythonPlugin(PluginContext(home=store.home, store=store))
        keep = plugin.create_resource({}).id
        keep_work = Path(plugin.location(keep))
        (keep_work / "keep.txt").write_text("kept")
        kept = plugin.commit_version(keep)
        gone = plugin.create_resource({}).id
        (Path(plugin.location(gone)) / "big.bin").write_bytes(os.urandom(1 << 20))
        dropped = plugin.commit_version(gone)
        plugin.destroy_resource(gone)
        (keep_work / "staged.txt").write_text("added to the index, never committed")
        plugin._git.stage(keep_work, keep_work.parent / "index")
        before = git_objects(plugin)

        freed = plugin.collect({kept})

        assert freed > 1 << 19
        assert git_objects(plugin) < before
        assert plugin.missing_versions([kept, dropped]) == {dropped}
        assert plugin.commit_version(keep) != kept  # the staged blob survived: the commit can be written
        assert plugin.read_version(kept, b"keep.txt") == b"kept"


# -- output as it comes ----------------------------------------------------------------------------------

WAIT_FOR_THE_LISTENER = """\
import os, sys, time
print('first', flush=True)
end = time.monotonic() + 30
while not os.path.exists('go') and time.monotonic() < end:
    time.sleep(0.02)
print('second, after the listener answered:', os.path.exists('go'), file=sys.stderr)
42
"""


def test_a_cell_streams_to_the_listener_while_it_runs(plugin: PythonPlugin, resource: str) -> None:
    """The cell waits for a file the listener writes on seeing its first line: only a streamed line gets it."""
    seen: list[str] = []

    def listen(chunk: str) -> None:
        if not seen:
            (Path(plugin.location(resource)) / "go").write_text("")
        seen.append(chunk)

    with streaming_to(listen):
        result = run(plugin, resource, WAIT_FOR_THE_LISTENER)
    run(plugin, resource, "print('nobody listens')")  # and nothing breaks

    assert seen[0] == "first\n"
    assert "".join(seen) == "first\nsecond, after the listener answered: True\n42\n"  # the value, shown last
    assert result == "[stdout]\nfirst\n[stderr]\nsecond, after the listener answered: True\n[result]\n42"
