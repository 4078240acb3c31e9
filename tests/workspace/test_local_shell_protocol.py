"""local_shell beyond tools and loads: live files in and out, versions browsed, diffed, moved and collected.

Names are bytes: each path test meets the hostile names of issue 10 (a Latin-1
``café``, a directory with U+2028, a newline).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from domarkx.data.store import Store
from domarkx.errors import PathEscapeError, StoreError, UsageError
from domarkx.workspace.diff import file_diff
from domarkx.workspace.plugin import Layer, PluginContext
from domarkx.workspace.plugins.local_shell import LocalShellPlugin

LATIN = b"caf\xe9"
LINE_SEP = "line\u2028sep".encode()


def plugin_in(home: Path) -> LocalShellPlugin:
    store = Store(home)
    return LocalShellPlugin(PluginContext(home=store.home, store=store, plugin_type="local_shell"))


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[LocalShellPlugin]:
    found = plugin_in(tmp_path / "home")
    yield found
    found.context.store.close()


def bpath(work: Path, *parts: bytes) -> bytes:
    return os.path.join(os.fsencode(work), *parts)


def hostile_tree(work: Path) -> None:
    """A Latin-1 file and empty directory, a U+2028 directory, a newline name, a link, an executable."""
    with open(bpath(work, LATIN + b".txt"), "wb") as fh:
        fh.write(b"latin-1 name\n")
    os.makedirs(bpath(work, LATIN + b"-empty"))
    os.makedirs(bpath(work, LINE_SEP, b"inner-empty"))
    with open(bpath(work, b"new\nline"), "wb") as fh:
        fh.write(b"two\nlines\n")
    (work / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (work / "run.sh").chmod(0o755)
    os.symlink("run.sh", work / "link")


def test_hostile_names_commit_load_and_read_back(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    hostile_tree(plugin.work_dir(rid))
    version = plugin.commit_version(rid)

    other = plugin.create_resource({"sandbox": "none"}).id
    plugin.load_version(other, version)

    work = plugin.work_dir(other)
    assert sorted(os.listdir(os.fsencode(work))) == sorted(
        [LATIN + b".txt", LATIN + b"-empty", LINE_SEP, b"new\nline", b"run.sh", b"link"]
    )
    assert os.listdir(bpath(work, LINE_SEP)) == [b"inner-empty"]
    assert plugin.missing_versions([version]) == set()
    assert plugin.commit_version(other) == version  # same state, same id


def test_list_and_read_a_version_without_loading_it(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    hostile_tree(plugin.work_dir(rid))
    version = plugin.commit_version(rid)

    top = {e.name: e for e in plugin.list_version(version)}
    assert top[LATIN + b".txt"].kind == "file"
    assert top[LATIN + b".txt"].size == len(b"latin-1 name\n")
    assert top[LATIN + b"-empty"].kind == "dir"
    assert (top[b"link"].kind, top[b"link"].target) == ("link", b"run.sh")
    assert top[b"run.sh"].executable
    assert [e.name for e in plugin.list_version(version, LINE_SEP)] == [b"inner-empty"]
    assert plugin.read_version(version, LATIN + b".txt") == b"latin-1 name\n"
    assert plugin.read_version(version, b"./new\nline") == b"two\nlines\n"
    with pytest.raises(UsageError, match="no file"):
        plugin.read_version(version, b"absent")
    with pytest.raises(PathEscapeError):
        plugin.read_version(version, b"../outside")


def test_diff_is_the_tree_diff_and_agrees_with_the_generic_walker(plugin: LocalShellPlugin) -> None:
    rid = plugin.create_resource({"sandbox": "none", "files": {"keep.txt": "same\n", "edit.txt": "a\nb\n"}}).id
    before = plugin.get_version(rid)
    work = plugin.work_dir(rid)
    (work / "edit.txt").write_text("a\nc\n")
    (work / "keep.txt").unlink()
    hostile_tree(work)
    after = plugin.commit_version(rid)

    found = plugin.diff_versions(before, after)
    files = [c for c in found.changes if c.kind == "file"]
    generic = file_diff(plugin, before, after).changes
    assert [(c.name, c.status, c.added, c.removed, c.detail) for c in files] == [
        (c.name, c.status, c.added, c.removed, c.detail) for c in generic
    ]
    by_name = {c.name: c for c in found.changes}
    assert by_name["caf\\xe9.txt"].status == "added"
    assert by_name["new\\nline"].detail.startswith("--- /dev/null\n+++ b/new\\nline\n")
    assert by_name["edit.txt"].detail.endswith("-b\n+c\n")
    assert by_name["keep.txt"].status == "removed"
    assert "+symlink -> run.sh\n" in by_name["link"].detail
    assert {c.name for c in found.changes if c.kind == "dir"} == {"caf\\xe9-empty", "line\\u2028sep/inner-empty"}
    assert plugin.diff_versions(after, after).changes == []


def test_copy_out_and_in_keep_names_links_and_the_executable_bit(plugin: LocalShellPlugin, tmp_path: Path) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    hostile_tree(plugin.work_dir(rid))
    out = tmp_path / "out"
    out.mkdir()

    plugin.copy_out(rid, b"", out)
    assert sorted(os.listdir(os.fsencode(out))) == sorted(os.listdir(os.fsencode(plugin.work_dir(rid))))
    assert os.readlink(out / "link") == "run.sh"
    assert os.access(out / "run.sh", os.X_OK)

    other = plugin.create_resource({"sandbox": "none"}).id
    plugin.copy_in(other, out, b"copied")
    work = plugin.work_dir(other)
    assert os.path.exists(bpath(work, b"copied", LATIN + b".txt"))
    plugin.copy_in(other, out / "run.sh", b"copied")  # an existing directory: into it
    assert (work / "copied" / "run.sh").read_text() == "#!/bin/sh\necho hi\n"
    version = plugin.commit_version(other)
    assert plugin.read_version(version, b"copied/" + LATIN + b".txt") == b"latin-1 name\n"


@pytest.mark.parametrize("path", [b"../escape", b"/etc/passwd", b"a/../../b", b"nul\0byte"])
def test_copy_refuses_paths_that_leave_the_work_tree(plugin: LocalShellPlugin, tmp_path: Path, path: bytes) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    source = tmp_path / "f.txt"
    source.write_text("x")
    with pytest.raises(PathEscapeError):
        plugin.copy_in(rid, source, path)
    with pytest.raises(PathEscapeError):
        plugin.copy_out(rid, path, tmp_path)


def test_copy_never_follows_a_symlink_a_command_made(plugin: LocalShellPlugin, tmp_path: Path) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host file")
    os.symlink(outside, plugin.work_dir(rid) / "door")
    source = tmp_path / "f.txt"
    source.write_text("planted")

    with pytest.raises(PathEscapeError, match="symlink"):
        plugin.copy_in(rid, source, b"door/planted")
    with pytest.raises(PathEscapeError, match="symlink"):
        plugin.copy_out(rid, b"door/secret", tmp_path / "taken")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert not (tmp_path / "taken").exists()


def test_copy_refuses_fifos(plugin: LocalShellPlugin, tmp_path: Path) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    os.mkfifo(plugin.work_dir(rid) / "pipe")
    os.mkfifo(tmp_path / "host-pipe")
    with pytest.raises(UsageError, match="not a regular file"):
        plugin.copy_out(rid, b"", tmp_path / "out")
    with pytest.raises(UsageError, match="not a regular file"):
        plugin.copy_in(rid, tmp_path / "host-pipe", b"x")
    assert not (tmp_path / "out").exists()


def test_versions_move_to_another_home_as_one_pack(plugin: LocalShellPlugin, tmp_path: Path) -> None:
    rid = plugin.create_resource({"sandbox": "none"}).id
    hostile_tree(plugin.work_dir(rid))
    first = plugin.commit_version(rid)
    (plugin.work_dir(rid) / "later.txt").write_text("later\n")
    second = plugin.commit_version(rid)
    out = tmp_path / "layers"
    out.mkdir()

    (full,) = plugin.export_versions([first], out)
    receiver = plugin_in(tmp_path / "receiver")
    assert receiver.missing_versions([first]) == {first}
    receiver.import_versions([full])
    receiver.import_versions([full])  # already here: nothing happens
    assert receiver.missing_versions([first]) == set()

    newer_dir = tmp_path / "newer"
    newer_dir.mkdir()
    (newer,) = plugin.export_versions([second], newer_dir, have=[first])
    assert newer.size < full.size  # only what the receiver lacks
    assert plugin.export_versions([second], newer_dir, have=[second]) == []
    receiver.import_versions([full, newer])
    rid2 = receiver.create_resource({"sandbox": "none"}).id
    receiver.load_version(rid2, second)
    assert (receiver.work_dir(rid2) / "later.txt").read_text() == "later\n"
    assert os.path.exists(bpath(receiver.work_dir(rid2), LATIN + b".txt"))


def test_a_pack_that_lacks_what_it_claims_adds_nothing(plugin: LocalShellPlugin, tmp_path: Path) -> None:
    rid = plugin.create_resource({"sandbox": "none", "files": {"a.txt": "a"}}).id
    first = plugin.get_version(rid)
    (plugin.work_dir(rid) / "b.txt").write_text("b")
    second = plugin.commit_version(rid)
    out = tmp_path / "layers"
    out.mkdir()
    (only_new,) = plugin.export_versions([second], out, have=[first])
    receiver = plugin_in(tmp_path / "receiver")
    packs = receiver._git.git_dir / "objects" / "pack"

    with pytest.raises(StoreError, match=r"not a sound pack|lacks objects"):
        receiver.import_versions([only_new])  # its parent's objects are not here
    (whole,) = plugin.export_versions([first], out)
    lying = Layer(whole.media_type, whole.path, whole.digest, whole.size, {"io.domarkx.versions": second})
    with pytest.raises(StoreError, match="does not hold"):
        receiver.import_versions([lying])
    garbage = out / "garbage.pack"
    garbage.write_bytes(b"PACK" + os.urandom(64))
    with pytest.raises(StoreError):
        receiver.import_versions([Layer(only_new.media_type, garbage, "sha256:x", 68, {"io.domarkx.versions": second})])
    assert list(packs.iterdir()) == []
    assert receiver.missing_versions([second]) == {second}


def count_objects(plugin: LocalShellPlugin) -> int:
    out = subprocess.run(
        ["git", "count-objects", "-v"],
        env={"GIT_DIR": str(plugin._git.git_dir), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = dict(line.split(": ") for line in out.splitlines())
    return int(fields["count"]) + int(fields["in-pack"])


def test_collect_drops_what_no_live_version_or_index_needs(plugin: LocalShellPlugin) -> None:
    keep = plugin.create_resource({"sandbox": "none", "files": {"keep.txt": "kept"}}).id
    kept = plugin.get_version(keep)
    gone = plugin.create_resource({"sandbox": "none"}).id
    (plugin.work_dir(gone) / "big.bin").write_bytes(os.urandom(1 << 20))
    dropped = plugin.commit_version(gone)
    plugin.destroy_resource(gone)
    (plugin.work_dir(keep) / "staged.txt").write_text("added to the index, never committed")
    plugin._git.stage(plugin.work_dir(keep), plugin.work_dir(keep).parent / "index")
    before = count_objects(plugin)

    freed = plugin.collect({kept})

    assert freed > 1 << 19
    assert count_objects(plugin) < before
    assert plugin.missing_versions([kept, dropped]) == {dropped}
    assert plugin.commit_version(keep) != kept  # the staged blob survived: the commit can be written


@pytest.mark.parametrize("damage", [b"", b"DIRC\0\0\0\2garbage", b"\xff" * 64])
def test_a_damaged_index_is_rebuilt_from_the_last_version(plugin: LocalShellPlugin, damage: bytes) -> None:
    """A power cut while git wrote the index (it is a cache, not fsynced) must not wedge the resource."""
    rid = plugin.create_resource({"sandbox": "none", "files": {"a.txt": "a\n"}}).id
    first = plugin.get_version(rid)
    index = plugin.work_dir(rid).parent / "index"
    index.write_bytes(damage)
    (plugin.work_dir(rid) / "b.txt").write_text("b\n")

    second = plugin.commit_version(rid)

    assert plugin.read_version(second, b"b.txt") == b"b\n"
    index.write_bytes(damage)
    plugin.load_version(rid, first)
    assert sorted(p.name for p in plugin.work_dir(rid).iterdir()) == ["a.txt"]
