"""local_shell: tools, git versions (exact round trips, cross-resource loads), sandbox modes."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domarkx.data.store import Store
from domarkx.errors import DomarkxError, UsageError
from domarkx.workspace.plugin import PluginContext, ToolError
from domarkx.workspace.plugins import _sandbox
from domarkx.workspace.plugins.local_shell import LocalShellPlugin

HAVE_BWRAP = _sandbox.bwrap_works()
SANDBOXES = [
    "none",
    pytest.param("bwrap", marks=pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap cannot run here")),
]


@pytest.fixture
def plugin() -> Iterator[LocalShellPlugin]:
    with Store() as store:
        yield LocalShellPlugin(PluginContext(home=store.home, store=store))


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a version must restore: kinds, bytes, link targets, the executable bit, empty dirs."""
    found: dict[str, tuple[Any, ...]] = {}
    for top, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(top, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir",)
            else:
                found[rel] = ("file", path.read_bytes(), bool(path.stat().st_mode & 0o100))
    return found


def sh(plugin: LocalShellPlugin, rid: str, command: str) -> dict[str, Any]:
    result: dict[str, Any] = plugin.execute_tool(rid, "run_command", command=command)
    assert result["exit_code"] == 0, result
    return result


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_round_trip_restores_the_exact_state(plugin: LocalShellPlugin, sandbox: str) -> None:
    rid = plugin.create_resource({"sandbox": sandbox, "files": {"README.md": "# hi\n"}}).id
    work = plugin.work_dir(rid)
    plugin.execute_tool(rid, "write_file", path="src/app.py", content="print('v1')\r\n")
    sh(plugin, rid, "printf '#!/bin/sh\\necho run\\n' > run.sh && chmod +x run.sh")
    sh(plugin, rid, "mkdir -p empty/nested keep && ln -s src/app.py link && printf '\\0\\1\\2' > data.bin")
    sh(plugin, rid, "touch keep/.gitignore && echo '*' > .gitignore && printf 'ignored\\n' > keep/ignored")
    first_state = tree(work)
    first = plugin.commit_version(rid)

    plugin.execute_tool(rid, "edit_file", path="src/app.py", old_text="v1", new_text="v2")
    sh(plugin, rid, "chmod -x run.sh && rm -r empty data.bin && rm link && mkdir link && echo x > link/f")
    sh(plugin, rid, "mkdir -p more/empty && echo new > new.txt && rm keep/ignored")
    second_state = tree(work)
    second = plugin.commit_version(rid)
    assert second != first

    sh(plugin, rid, "echo uncommitted > stray.txt && mkdir stray-dir && echo junk >> README.md")
    plugin.load_version(rid, first)
    assert tree(work) == first_state
    assert plugin.get_version(rid) == first
    plugin.load_version(rid, second)
    assert tree(work) == second_state
    assert plugin.commit_version(rid) == second


STATES = [
    "mkdir -p a/b e1/e2 && echo 1 > a/b/f && echo x > x && ln -s x lx",
    "rm -r a x lx e1 && echo file > a && mkdir -p x lx e3 && echo in > x/y && echo z > lx/z",
    "rm a && ln -s nowhere a && chmod +x x/y && mkdir x/e && rm -r lx && echo 2 > lx && rmdir e3",
    "rm -r ./* && mkdir -p only/deeper",
]


@pytest.mark.parametrize("dirty", [False, True], ids=["clean", "after-changes"])
def test_every_transition_between_versions_is_exact(plugin: LocalShellPlugin, dirty: bool) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    versions: list[tuple[str, dict[str, tuple[Any, ...]]]] = []
    for command in STATES:
        sh(plugin, rid, command)
        versions.append((plugin.commit_version(rid), tree(plugin.work_dir(rid))))
    for start, (start_version, _) in enumerate(versions):
        for end, (end_version, end_tree) in enumerate(versions):
            plugin.load_version(rid, start_version)
            if dirty:
                sh(plugin, rid, "echo junk > junk && mkdir -p junk-dir/inner && chmod -R +x . 2>/dev/null; true")
            plugin.load_version(rid, end_version)
            assert tree(plugin.work_dir(rid)) == end_tree, (start, end)


def test_load_never_deletes_through_a_link_out(plugin: LocalShellPlugin, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("precious")
    rid = plugin.create_resource({"sandbox": "none"}).id
    sh(plugin, rid, "mkdir d && echo x > d/f")
    with_file = plugin.commit_version(rid)
    sh(plugin, rid, "rm -r d")
    without = plugin.commit_version(rid)
    plugin.load_version(rid, with_file)
    work = plugin.work_dir(rid)
    shutil.rmtree(work / "d")  # behind domarkx's back, not through a tool
    (work / "d").symlink_to(outside)
    with pytest.raises(DomarkxError, match="leads out of the work tree"):
        plugin.load_version(rid, without)
    plugin.load_version(rid, without)  # the failed load left the tree in doubt: now it is staged first
    assert tree(work) == {}
    assert (outside / "f").read_text() == "precious"


def test_load_never_writes_through_a_link_a_command_made(plugin: LocalShellPlugin, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    rid = plugin.create_resource({"sandbox": "none", "files": {"f": "mine", "d/g": "also mine"}}).id
    version = plugin.get_version(rid)
    sh(plugin, rid, f"rm f && ln -s {outside} f && rm -r d && ln -s {tmp_path} d")
    plugin.load_version(rid, version)
    assert tree(plugin.work_dir(rid)) == {
        "d": ("dir",),
        "d/g": ("file", b"also mine", False),
        "f": ("file", b"mine", False),
    }
    assert outside.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.txt"]


def test_commit_is_idempotent(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    initial = plugin.get_version(rid)
    assert plugin.commit_version(rid) == initial
    plugin.execute_tool(rid, "write_file", path="a.txt", content="a")
    changed = plugin.commit_version(rid)
    plugin.execute_tool(rid, "read_file", path="a.txt")
    plugin.execute_tool(rid, "list_dir")
    assert plugin.commit_version(rid) == changed != initial
    plugin.load_version(rid, initial)
    assert plugin.commit_version(rid) == initial


def test_an_empty_directory_alone_is_a_change(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    before = plugin.get_version(rid)
    sh(plugin, rid, "mkdir only-a-dir")
    after = plugin.commit_version(rid)
    assert after != before
    plugin.load_version(rid, before)
    assert not (plugin.work_dir(rid) / "only-a-dir").exists()
    plugin.load_version(rid, after)
    assert (plugin.work_dir(rid) / "only-a-dir").is_dir()


def test_a_version_loads_into_another_resource(plugin: LocalShellPlugin) -> None:
    a = plugin.create_resource({"sandbox": "none"}).id
    b = plugin.create_resource({"sandbox": "none", "files": {"other.txt": "b's own"}}).id
    sh(plugin, a, "mkdir -p d/e && echo from-a > d/file && chmod 755 d/file")
    version = plugin.commit_version(a)
    plugin.load_version(b, version)
    assert tree(plugin.work_dir(b)) == tree(plugin.work_dir(a))
    assert plugin.commit_version(b) == version


def test_equal_states_in_two_resources_give_equal_versions(plugin: LocalShellPlugin) -> None:
    a = plugin.create_resource({"files": {"x": "1"}}).id
    b = plugin.create_resource({"files": {"x": "1"}}).id
    assert plugin.get_version(a) == plugin.get_version(b)


def test_resources_survive_a_new_plugin_instance(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    plugin.execute_tool(rid, "write_file", path="f", content="kept")
    version = plugin.commit_version(rid)
    with Store() as store:
        again = LocalShellPlugin(PluginContext(home=store.home, store=store))
        assert again.get_version(rid) == version
        assert again.execute_tool(rid, "read_file", path="f") == "kept"


def test_history_lives_outside_the_work_tree(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none", "files": {"f": "1"}}).id
    first = plugin.get_version(rid)
    assert sorted(p.name for p in plugin.work_dir(rid).iterdir()) == ["f"]
    sh(plugin, rid, "git init -q . && git -c user.name=x -c user.email=x@y commit -q --allow-empty -m own")
    plugin.execute_tool(rid, "write_file", path="f", content="2")
    plugin.commit_version(rid)
    plugin.load_version(rid, first)
    assert (plugin.work_dir(rid) / "f").read_text() == "1"


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap cannot run here")
def test_sandboxed_commands_cannot_see_the_object_store(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "bwrap"}).id
    store_dir = plugin.context.plugin_dir("local_shell") / "objects.git"
    assert (store_dir / "HEAD").exists()
    result = plugin.execute_tool(rid, "run_command", command=f"ls {store_dir}")
    assert result["exit_code"] != 0
    assert "No such file" in result["stderr"]


def test_unknown_versions_are_usage_errors(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    with pytest.raises(UsageError, match="not a local_shell version"):
        plugin.load_version(rid, "sha256:abc")
    with pytest.raises(UsageError, match="unknown local_shell version"):
        plugin.load_version(rid, "0" * 40)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"timout": 5}, "timout: unknown option"),
        ({"sandbox": "docker"}, "sandbox"),
        ({"timeout": -1}, "timeout"),
        ({"files": {"../x": "y"}}, "outside the workspace"),
        ({"files": {".git/config": "y"}}, ".git"),
    ],
)
def test_bad_config_is_a_usage_error(plugin: LocalShellPlugin, config: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plugin.create_resource(config)
    assert not list((plugin.context.home / "resources").glob("local_shell-*/work"))


def test_tool_errors(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    with pytest.raises(ToolError, match="no such file"):
        plugin.execute_tool(rid, "read_file", path="missing.txt")
    with pytest.raises(ToolError, match="no tool 'format_disk'"):
        plugin.execute_tool(rid, "format_disk")
    with pytest.raises(ToolError, match="unexpected keyword"):
        plugin.execute_tool(rid, "read_file", path="x", mode="rb")
    with pytest.raises(ToolError, match="timeout must be a number"):
        plugin.execute_tool(rid, "run_command", command="true", timeout="soon")


def test_command_time_out_and_output_cap_come_from_config(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none", "timeout": 0.3, "max_output": 1000}).id
    slept = plugin.execute_tool(rid, "run_command", command="sleep 100")
    assert slept["timed_out"] is True
    flood = plugin.execute_tool(rid, "run_command", command="yes | head -c 100000")
    assert "[… truncated" in flood["stdout"]
    assert len(flood["stdout"]) < 1100


def test_commands_run_in_the_work_dir(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    out = sh(plugin, rid, "pwd")["stdout"].strip()
    assert Path(out).resolve() == plugin.work_dir(rid).resolve()


def test_destroy_removes_the_resource_but_not_its_versions(plugin: LocalShellPlugin) -> None:
    a = plugin.create_resource({"sandbox": "none"}).id
    sh(plugin, a, "mkdir ro && echo x > ro/f && chmod 500 ro")
    version = plugin.commit_version(a)
    plugin.destroy_resource(a)
    assert not plugin.work_dir(a).exists()
    b = plugin.create_resource({"sandbox": "none"}).id
    plugin.load_version(b, version)
    assert (plugin.work_dir(b) / "ro" / "f").read_text() == "x\n"


def test_gitattributes_in_the_work_tree_cannot_change_bytes(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    files = {".gitattributes": "* text eol=crlf\n", "unix.txt": "a\nb\n", "dos.txt": "a\r\nb\r\n"}
    for path, content in files.items():
        plugin.execute_tool(rid, "write_file", path=path, content=content)
    version = plugin.commit_version(rid)
    sh(plugin, rid, "rm .gitattributes unix.txt dos.txt")
    plugin.load_version(rid, version)
    for path, content in files.items():
        assert (plugin.work_dir(rid) / path).read_bytes() == content.encode()


# -- sandbox -------------------------------------------------------------------------------


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap cannot run here")
def test_bwrap_confines_commands(plugin: LocalShellPlugin, tmp_path: Path) -> None:
    (tmp_path / "host-secret").write_text("secret")
    rid = plugin.create_resource({"sandbox": "bwrap"}).id
    result = plugin.execute_tool(
        rid,
        "run_command",
        command=f"cat {tmp_path}/host-secret; touch /usr/x; echo $HOME; cat /etc/hostname >/dev/null && echo etc-ok",
    )
    assert "secret" not in result["stdout"]
    assert "No such file" in result["stderr"]
    assert "Read-only file system" in result["stderr"] or "Permission denied" in result["stderr"]
    assert result["stdout"].splitlines() == ["/tmp", "etc-ok"]


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap cannot run here")
def test_bwrap_has_no_network(plugin: LocalShellPlugin) -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=5)'"
        host = subprocess.run(["bash", "-c", probe], capture_output=True, check=False)
        assert host.returncode == 0  # reachable from outside the sandbox
        rid = plugin.create_resource({"sandbox": "bwrap"}).id
        inside = plugin.execute_tool(rid, "run_command", command=probe)
    assert inside["exit_code"] != 0
    assert "Connection refused" in inside["stderr"] or "unreachable" in inside["stderr"]


@pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap cannot run here")
def test_bwrap_background_processes_die_with_the_call(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "bwrap"}).id
    result = plugin.execute_tool(rid, "run_command", command="setsid sleep 100 & echo started", timeout=30)
    assert result["timed_out"] is False
    assert result["stdout"] == "started\n"


def test_missing_bwrap_warns_once_and_runs_unconfined(
    plugin: LocalShellPlugin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_sandbox, "bwrap_works", lambda: False)
    monkeypatch.setattr(_sandbox, "_warned", set())
    rid = plugin.create_resource({}).id
    capsys.readouterr()
    assert sh(plugin, rid, "echo ran")["stdout"] == "ran\n"
    sh(plugin, rid, "true")
    err = capsys.readouterr().err
    assert err.count("not a security boundary") == 1


def test_sandbox_bwrap_is_refused_where_it_cannot_run(
    plugin: LocalShellPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sandbox, "bwrap_works", lambda: False)
    with pytest.raises(UsageError, match="bubblewrap"):
        plugin.create_resource({"sandbox": "bwrap"})


def test_sandbox_none_does_not_warn(
    plugin: LocalShellPlugin, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_sandbox, "_warned", set())
    rid = plugin.create_resource({"sandbox": "none"}).id
    sh(plugin, rid, "true")
    assert "security boundary" not in capsys.readouterr().err
