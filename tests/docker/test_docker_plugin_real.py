"""``docker_sandbox`` on a real engine: versions, their cost, users, networks, files, leftovers."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from real_engine import Engine

from domarkx.errors import DomarkxError, PathEscapeError, ReferenceNotFound, StoreError, UsageError
from domarkx.workspace.plugin import ToolError
from domarkx.workspace.plugins import docker_sandbox
from domarkx.workspace.plugins.docker_sandbox import DockerSandboxPlugin

pytestmark = pytest.mark.docker


def call(plugin: DockerSandboxPlugin, resource: str, tool: str, **kwargs: Any) -> Any:
    return plugin.execute_tool(resource, tool, **kwargs)


def sh(plugin: DockerSandboxPlugin, resource: str, command: str) -> str:
    result = call(plugin, resource, "run_command", command=command)
    assert result["exit_code"] == 0, result
    return str(result["stdout"])


def layers(engine: Engine, version: str) -> int:
    return len(engine.api.inspect_image(version)["RootFS"]["Layers"])


def containers_of(engine: Engine, resource: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = engine.api.containers(
        all=True, filters={"label": f"{docker_sandbox.LABEL_RESOURCE}={resource}"}
    )
    return found


def test_versions_round_trip_and_read_only_calls_make_none(
    engine: Engine, plugin: DockerSandboxPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    resource = plugin.create_resource({"image": engine.image, "timeout": 20}).id
    first = plugin.commit_version(resource)
    assert sh(plugin, resource, 'echo "[$OPENAI_API_KEY]"; ls -A; pwd') == "[]\n/workspace\n"
    assert plugin.commit_version(resource) == first, "a command that changed nothing makes no version"

    call(plugin, resource, "write_file", path="notes/a.txt", content="one\n")
    second = plugin.commit_version(resource)
    sh(plugin, resource, "echo two > notes/a.txt && touch b.txt")
    timed = call(plugin, resource, "run_command", command="sleep 30 | cat", timeout=1)
    assert timed["timed_out"] is True
    third = plugin.commit_version(resource)
    assert len({first, second, third}) == 3 and layers(engine, third) == layers(engine, second) + 1

    plugin.load_version(resource, second)
    assert call(plugin, resource, "read_file", path="notes/a.txt") == "one\n"
    assert call(plugin, resource, "list_dir") == "notes/"
    plugin.load_version(resource, third)
    assert sh(plugin, resource, "cat notes/a.txt; ls") == "two\nb.txt\nnotes\n"
    assert len(containers_of(engine, resource)) == 1


def test_a_version_needs_only_its_image(engine: Engine, plugin: DockerSandboxPlugin) -> None:
    """Fork and load work after the base image's tag is gone: nothing starts from it again."""
    base = engine.derived_image("from the base\n")
    resource = plugin.create_resource({"image": base}).id
    call(plugin, resource, "write_file", path="kept.txt", content="kept\n")
    version = plugin.commit_version(resource)
    plugin.close(resource)  # its container was made from the base image
    engine.api.remove_image(base)
    with pytest.raises(DomarkxError, match="is not on the Docker engine and could not be pulled"):
        plugin.commit_version(plugin.create_resource({"image": base}).id)

    fork = plugin.create_resource({"image": base}).id
    plugin.load_version(fork, version)
    assert sh(plugin, fork, "cat /marker.txt kept.txt") == "from the base\nkept\n"


def test_commits_cost_what_changed(engine: Engine, plugin: DockerSandboxPlugin) -> None:
    """After one 100 MB write, small changes make small layers (sizes, never times, are asserted)."""
    resource = plugin.create_resource({"image": engine.image, "timeout": 60}).id
    sh(plugin, resource, "head -c 100000000 /dev/zero > big.bin")
    big = plugin.commit_version(resource)
    size = engine.api.inspect_image(big)["Size"]
    assert size > 100_000_000
    versions = [big]
    for step in range(10):
        sh(plugin, resource, f"echo {step} > small.txt")
        versions.append(plugin.commit_version(resource))
        if step < 2:
            sh(plugin, resource, "ls -l > /dev/null; cat small.txt > /dev/null")
            assert plugin.commit_version(resource) == versions[-1], "reading makes no version"
    for older, newer in itertools.pairwise(versions):
        grown = engine.api.inspect_image(newer)["Size"] - engine.api.inspect_image(older)["Size"]
        assert 0 <= grown < 100_000, f"a one-line change cost {grown} bytes"
        assert layers(engine, newer) == layers(engine, older) + 1
    assert len(set(versions)) == 11
    assert plugin.read_version(versions[-1], b"small.txt") == b"9\n"

    # `docker diff` would see nothing here: same size, the old time put back
    sh(plugin, resource, "echo A > small.txt && touch -d '2020-01-01 00:00:00' small.txt")
    before = plugin.commit_version(resource)
    sh(plugin, resource, "echo B > small.txt && touch -d '2020-01-01 00:00:00' small.txt")
    after = plugin.commit_version(resource)
    assert after != before and plugin.read_version(after, b"small.txt") == b"B\n"


def test_many_layers_are_squashed(engine: Engine, plugin: DockerSandboxPlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    resource = plugin.create_resource({"image": engine.image, "environment": {"KEEP": "me"}}).id
    start = layers(engine, plugin.commit_version(resource))
    monkeypatch.setattr(docker_sandbox, "SQUASH_AT", start + 1)
    for step in range(3):
        sh(plugin, resource, f"echo {step} >> log.txt && rm -f gone.txt && touch gone.txt")
        version = plugin.commit_version(resource)
    assert layers(engine, version) == 1, "flattened"
    other = plugin.create_resource({"image": engine.image, "environment": {"KEEP": "me"}}).id
    plugin.load_version(other, version)
    assert sh(plugin, other, "cat log.txt; echo $KEEP; ls") == "0\n1\n2\nme\ngone.txt\nlog.txt\n"
    assert plugin.list_version(version)[1].name == b"log.txt"


def test_non_root_image_gets_a_writable_work_dir(engine: Engine, plugin: DockerSandboxPlugin) -> None:
    resource = plugin.create_resource({"image": engine.nonroot_image}).id
    assert sh(plugin, resource, "id -u; touch made-by-shell && ls") == "1000\nmade-by-shell\n"
    call(plugin, resource, "write_file", path="deep/er/file.txt", content="by the tool\n")
    assert sh(plugin, resource, "echo appended >> deep/er/file.txt && stat -c %u deep/er/file.txt") == "1000\n"
    version = plugin.commit_version(resource)

    fork = plugin.create_resource({"image": engine.nonroot_image}).id
    plugin.load_version(fork, version)
    assert sh(plugin, fork, "cat deep/er/file.txt; touch again") == "by the tool\nappended\n"
    named = plugin.create_resource({"image": engine.image, "user": "app", "workdir": "/srv/work"}).id
    assert sh(plugin, named, "id -un; pwd; touch x && ls") == "app\n/srv/work\nx\n"


def test_networks_the_engine_lacks_are_refused(engine: Engine, plugin: DockerSandboxPlugin) -> None:
    for network in ("bridge", "no-such-net"):
        with pytest.raises(UsageError, match=f"has no network '{network}'") as caught:
            plugin.create_resource({"image": engine.image, "network": network})
        assert caught.value.hint is not None and "none" in caught.value.hint
    assert DockerSandboxPlugin.powers({"image": "x", "network": "host"}) == ["the host's network (network: host)"]
    assert DockerSandboxPlugin.powers({"image": "x"}) == []
    assert len(DockerSandboxPlugin.powers({"network": "bridge", "privileged": True, "mounts": ["/a:/b"]})) == 3


def test_a_failed_start_leaves_no_container(engine: Engine, plugin: DockerSandboxPlugin) -> None:
    resource = plugin.create_resource({"image": engine.image, "user": "nobody-here"}).id
    with pytest.raises(DomarkxError, match="nobody-here"):
        plugin.commit_version(resource)
    assert containers_of(engine, resource) == []
    with pytest.raises(DomarkxError, match="nobody-here"):
        call(plugin, resource, "run_command", command="true")
    assert containers_of(engine, resource) == []


def test_close_and_destroy_remove_containers(engine: Engine, plugin: DockerSandboxPlugin) -> None:
    resource = plugin.create_resource({"image": engine.image}).id
    call(plugin, resource, "write_file", path="f.txt", content="x")
    plugin.commit_version(resource)
    assert len(containers_of(engine, resource)) == 1
    plugin.close(resource)
    assert containers_of(engine, resource) == [], "everything is in a version: the container goes"
    call(plugin, resource, "write_file", path="g.txt", content="uncommitted")
    plugin.close(resource)
    [stopped] = containers_of(engine, resource)
    assert stopped["State"] == "exited", "uncommitted changes keep their (stopped) container"
    assert call(plugin, resource, "read_file", path="g.txt") == "uncommitted"
    plugin.destroy_resource(resource)
    assert containers_of(engine, resource) == []


def test_a_commit_keeps_the_container_until_something_may_change(engine: Engine, plugin: DockerSandboxPlugin) -> None:
    resource = plugin.create_resource({"image": engine.image}).id
    sh(plugin, resource, "echo 1 > a")
    version = plugin.commit_version(resource)
    [before] = containers_of(engine, resource)
    assert call(plugin, resource, "read_file", path="a") == "1\n"
    [same] = containers_of(engine, resource)
    assert same["Id"] == before["Id"]
    sh(plugin, resource, "true")
    [after] = containers_of(engine, resource)
    assert after["Id"] != before["Id"] and after["ImageID"] == version


def test_missing_versions_and_collect(
    engine: Engine, plugin: DockerSandboxPlugin, other_plugin: DockerSandboxPlugin
) -> None:
    resource = plugin.create_resource({"image": engine.image}).id
    call(plugin, resource, "write_file", path="a", content="a")
    kept = plugin.commit_version(resource)
    call(plugin, resource, "write_file", path="b", content="b")
    dropped = plugin.commit_version(resource)
    other = other_plugin.create_resource({"image": engine.image}).id
    other_plugin.load_version(other, dropped)  # another home refers to it too
    plugin.destroy_resource(resource)
    other_plugin.destroy_resource(other)

    assert plugin.missing_versions([kept, dropped, "sha256:" + "0" * 64]) == {"sha256:" + "0" * 64}
    plugin.collect({kept})
    assert plugin.missing_versions([kept, dropped]) == set(), "the other home still holds it"
    other_plugin.collect(set())
    assert plugin.missing_versions([kept, dropped]) == {dropped}
    plugin.collect(set())
    assert plugin.missing_versions([kept, dropped]) == {kept, dropped}


def test_browse_and_diff_versions(engine: Engine, plugin: DockerSandboxPlugin) -> None:
    resource = plugin.create_resource({"image": engine.image}).id
    odd = b"caf\xe9\nname.txt"
    sh(plugin, resource, "mkdir sub && printf 'a\\nb\\n' > sub/t.txt && printf '\\0\\1' > bin && ln -s /etc link")
    plugin.copy_in(resource, _host_file(plugin, b"odd", b"x"), odd)
    old = plugin.commit_version(resource)
    sh(plugin, resource, "printf 'a\\nc\\n' > sub/t.txt && rm bin && chmod +x sub/t.txt && echo new > new.txt")
    new = plugin.commit_version(resource)

    entries = {e.name: e for e in plugin.list_version(old)}
    assert set(entries) == {b"bin", b"link", b"sub", odd}
    assert entries[b"link"].kind == "link" and entries[b"link"].target == b"/etc"
    assert plugin.list_version(old, b"sub")[0].name == b"t.txt"
    assert plugin.read_version(old, odd) == b"x"
    assert plugin.read_version(new, b"sub/t.txt") == b"a\nc\n"
    with pytest.raises(UsageError, match="no such file"):
        plugin.read_version(new, b"bin")
    with pytest.raises(UsageError, match="not a path inside"):
        plugin.list_version(new, b"../etc")

    diff = {c.name: c for c in plugin.diff_versions(old, new).changes}
    assert set(diff) == {"bin", "new.txt", "sub/t.txt"}
    assert diff["bin"].status == "removed" and diff["new.txt"].status == "added"
    assert "-b\n+c\n" in diff["sub/t.txt"].detail
    assert plugin.diff_versions(new, new).changes == []


def _host_file(plugin: DockerSandboxPlugin, name: bytes, data: bytes) -> Path:
    path = plugin.context.home / os.fsdecode(name)
    path.write_bytes(data)
    return path


def test_copy_in_and_out(engine: Engine, plugin: DockerSandboxPlugin, tmp_path: Path) -> None:
    resource = plugin.create_resource({"image": engine.nonroot_image}).id
    source = tmp_path / "src"
    (source / "inner").mkdir(parents=True)
    (source / "inner" / "a.txt").write_text("a\n")
    (source / "link").symlink_to("inner/a.txt")
    plugin.copy_in(resource, source, b"copied")
    assert sh(plugin, resource, "cat copied/link; stat -c %u copied/inner/a.txt") == "a\n1000\n"
    with pytest.raises(PathEscapeError):
        plugin.copy_in(resource, source, b"../out")
    with pytest.raises(ToolError, match="working directory itself"):
        call(plugin, resource, "write_file", path=".", content="x")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UsageError, match="not a regular file"):
        plugin.copy_in(resource, tmp_path / "fifo", b"fifo")

    out = tmp_path / "out"
    out.mkdir()
    plugin.copy_out(resource, b"copied", out / "back")
    assert (out / "back" / "inner" / "a.txt").read_text() == "a\n"
    assert os.readlink(out / "back" / "link") == "inner/a.txt"
    sh(plugin, resource, "ln -s /etc/passwd leak && mkdir d && ln -s /etc/shadow d/leak")
    with pytest.raises(UsageError, match="refused"):
        plugin.copy_out(resource, b"d", out / "d")
    assert not (out / "d").exists()
    with pytest.raises(UsageError, match="no leak2"):
        plugin.copy_out(resource, b"leak2", out / "x")
    assert plugin.location(resource) == "container:/workspace"


def test_stdin_reaches_run_code(engine: Engine, plugin: DockerSandboxPlugin) -> None:
    resource = plugin.create_resource({"image": engine.image}).id
    result = plugin.run_code(resource, "wc -c; echo done >&2", stdin=b"x" * 200_000)
    assert (result["stdout"].strip(), result["stderr"]) == ("200000", "done\n")
    assert plugin.run_code(resource, "cat", stdin=None)["stdout"] == ""


def test_versions_move_between_engines_as_save_archives(
    engine: Engine, plugin: DockerSandboxPlugin, other_plugin: DockerSandboxPlugin, tmp_path: Path
) -> None:
    resource = plugin.create_resource({"image": engine.image}).id
    sh(plugin, resource, "head -c 300000 /dev/urandom > r.bin")
    first = plugin.commit_version(resource)
    sh(plugin, resource, "echo small > s.txt")
    second = plugin.commit_version(resource)
    [whole] = plugin.export_versions([first, second], tmp_path / "whole")
    [thin] = plugin.export_versions([second], tmp_path / "thin", have=[first])
    assert thin.size < whole.size - 250_000, "layers the receiver has stay home"
    assert plugin.export_versions([second, first], tmp_path / "again")[0].digest == whole.digest, "same bytes"
    with tarfile.open(whole.path) as layout:
        index = json.load(layout.extractfile("index.json"))  # type: ignore[arg-type]
        assert layout.extractfile("oci-layout").read() == b'{"imageLayoutVersion":"1.0.0"}'  # type: ignore[union-attr]
    assert {m["annotations"]["org.domarkx.docker.version"] for m in index["manifests"]} == {first, second}
    assert whole.media_type == "application/vnd.oci.image.layout.v1.tar"
    tampered = _tampered(whole.path, tmp_path / "tampered.tar")

    plugin.destroy_resource(resource)
    plugin.collect(set())
    assert plugin.missing_versions([first, second]) == {first, second}
    other_plugin.import_versions([whole])
    other_plugin.import_versions([whole])  # already there: nothing to do
    fork = other_plugin.create_resource({"image": engine.image}).id
    other_plugin.load_version(fork, second)
    assert sh(other_plugin, fork, "cat s.txt; wc -c < r.bin") == "small\n300000\n"

    forged = dataclasses.replace(whole, annotations={"org.domarkx.docker.versions": "sha256:" + "1" * 64})
    with pytest.raises(StoreError, match="does not hold"):
        other_plugin.import_versions([forged])
    other_plugin.destroy_resource(fork)
    other_plugin.collect(set())
    with pytest.raises(StoreError, match="does not hash"):
        other_plugin.import_versions([dataclasses.replace(whole, path=tampered)])
    assert other_plugin.missing_versions([first, second]) == {first, second}, "a refused import adds nothing"


def _tampered(source: Path, dest: Path) -> Path:
    """A copy of a layout whose biggest blob has one byte changed."""
    with tarfile.open(source) as original, tarfile.open(dest, "w") as copy:
        biggest = max(original.getmembers(), key=lambda m: m.size)
        for member in original.getmembers():
            data = original.extractfile(member).read()  # type: ignore[union-attr]
            if member is biggest:
                data = data[:-1] + bytes([data[-1] ^ 1])
            copy.addfile(member, io.BytesIO(data))
    return dest


def test_unknown_version_is_a_clear_error(engine: Engine, plugin: DockerSandboxPlugin) -> None:
    resource = plugin.create_resource({"image": engine.image}).id
    with pytest.raises(ReferenceNotFound, match="no image sha256:"):
        plugin.load_version(resource, "sha256:" + "f" * 64)
    with pytest.raises(ReferenceNotFound):
        plugin.list_version("sha256:" + "f" * 64)
    with pytest.raises(UsageError, match="not a docker_sandbox version"):
        plugin.list_version(engine.api.inspect_image(engine.image)["Id"])
