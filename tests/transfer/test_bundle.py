"""save/load end to end: a bundle carries sessions, workspaces included, into another home."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from transfer_helpers import Homes, log, members, visible_state, workspace_at, write_members

from domarkx import _entrypoints, ids


def saved(cli, tmp_path: Path, *refs: str) -> Path:  # type: ignore[no-untyped-def]
    bundle = tmp_path / "bundle.tar"
    result = cli("save", *refs, "-o", str(bundle))
    assert result.code == 0, result
    return bundle


def test_round_trip_into_an_empty_home(cli, homes: Homes, make_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    homes.use("a")
    instance = make_session(name="trip")
    bundle = saved(cli, tmp_path, "trip")
    export_a = cli("export", instance).out
    log_a = log(cli, instance)
    spaces_a = [workspace_at(cli, instance, n) for n in range(len(log_a))]

    homes.use("b")
    loaded = cli("load", str(bundle))
    assert loaded.code == 0, loaded
    assert loaded.out.strip() == instance
    assert "loaded instance" in loaded.err
    assert cli("export", instance).out == export_a
    assert cli("export", "trip").out == export_a  # the name came along
    assert log(cli, instance) == log_a
    assert [workspace_at(cli, instance, n) for n in range(len(log_a))] == spaces_a
    assert "a.txt" in spaces_a[-1] and "with newline.txt" in spaces_a[-1]
    doctor = cli("doctor")
    assert doctor.code == 0, doctor


def test_saving_twice_gives_the_same_file(cli, make_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_session(name="same")
    first = saved(cli, tmp_path, "same").read_bytes()
    assert saved(cli, tmp_path, "same").read_bytes() == first


def test_loading_twice_changes_nothing(cli, homes: Homes, make_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    homes.use("a")
    instance = make_session()
    bundle = saved(cli, tmp_path, instance)
    home = homes.use("b")
    assert cli("load", str(bundle)).code == 0
    before = visible_state(home)
    again = cli("load", str(bundle))
    assert again.code == 0, again
    assert "already here: instance" in again.err
    assert again.out.strip() == instance
    assert visible_state(home) == before


def test_snapshots_travel_with_their_tags(cli, homes: Homes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    homes.use("a")
    doc = tmp_path / "plain.md"
    doc.write_text("## user\n\n> hello\n")
    snap = cli("import", str(doc), "-t", "greeting").out.strip().splitlines()[-1]
    bundle = saved(cli, tmp_path, "greeting")
    homes.use("b")
    other = tmp_path / "other.md"
    other.write_text("## user\n\n> something else\n")
    cli("import", str(other), "-t", "greeting")
    loaded = cli("load", str(bundle))
    assert loaded.code == 0, loaded
    assert "tag greeting moved here from snapshot" in loaded.err
    assert cli("export", "greeting").out == doc.read_text()
    listing = json.loads(cli("snapshots", "ls", "--json").out)
    assert {s["id"]: s["tags"] for s in listing}[snap] == ["greeting"]


def test_a_committed_snapshot_brings_its_workspace(cli, homes: Homes, make_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    homes.use("a")
    instance = make_session()
    snapshot = cli("commit", instance, "-t", "done").out.strip()
    bundle = saved(cli, tmp_path, "done")
    homes.use("b")
    assert cli("load", str(bundle)).out.strip() == snapshot
    again = cli("run", "done", "-q").out.strip().splitlines()[-1]
    assert cli("exec", again, "--", "cat a.txt").out == "one\nchanged\n"


def test_several_sessions_in_one_bundle(cli, homes: Homes, make_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    homes.use("a")
    first, second = make_session(name="first"), make_session(name="second")
    bundle = saved(cli, tmp_path, "first", "second", "second")
    homes.use("b")
    loaded = cli("load", str(bundle))
    assert loaded.out.split() == [first, second], loaded
    assert {i["id"] for i in json.loads(cli("instances", "ls", "--json").out)} == {first, second}


def test_a_name_taken_here_is_left_off(cli, homes: Homes, make_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    homes.use("a")
    instance = make_session(name="dup")
    bundle = saved(cli, tmp_path, "dup")
    homes.use("b")
    mine = make_session(name="dup")
    loaded = cli("load", str(bundle))
    assert loaded.code == 0, loaded
    assert "loaded without its name" in loaded.err
    assert cli("export", "dup").out == cli("export", mine).out
    assert cli("log", instance).code == 0


def test_through_the_installed_script_and_pipes(homes: Homes, tmp_path: Path) -> None:
    home = homes.use("a")
    doc = tmp_path / "plain.md"
    doc.write_text("## user\n\n> piped\n")
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "DOMARKX_HOME": str(home)}
    snap = subprocess.run(["domarkx", "import", str(doc)], env=env, capture_output=True, text=True, check=True)
    snapshot = snap.stdout.strip()
    bundle = subprocess.run(["domarkx", "save", snapshot], env=env, capture_output=True, check=True).stdout
    assert bundle[257:262] == b"ustar"
    env["DOMARKX_HOME"] = str(homes.use("b"))
    loaded = subprocess.run(["domarkx", "load", "-"], env=env, input=bundle, capture_output=True, check=True)
    assert loaded.stdout.decode().strip() == snapshot


# -- refused bundles: nothing half-loaded ------------------------------------------------


@pytest.fixture
def bundle(cli, homes: Homes, make_session, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    homes.use("a")
    make_session(name="victim")
    return saved(cli, tmp_path, "victim")


def refused(cli, homes: Homes, bundle: Path, expected: str) -> None:  # type: ignore[no-untyped-def]
    home = homes.use("receiver")
    assert cli("snapshots", "ls").code == 0  # the store exists before, as it does after
    before = visible_state(home)
    result = cli("load", str(bundle))
    assert result.code == 1, result
    assert expected in result.err
    first, *rest = result.err.splitlines()
    assert first.startswith("error: ") and len(rest) <= 1 and all(r.startswith("  hint: ") for r in rest), result
    assert visible_state(home) == before


def blob_kinds(bundle: Path) -> dict[str, str]:
    """Tar member name → what the blob is (manifest, config, document, layer)."""
    items = dict((m.name, data) for m, data in members(bundle))
    manifest_digest = json.loads(items["index.json"])["manifests"][0]["digest"]
    manifest = json.loads(items["blobs/sha256/" + manifest_digest.removeprefix("sha256:")])
    kinds = {"blobs/sha256/" + manifest_digest.removeprefix("sha256:"): "manifest"}
    kinds["blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")] = "config"
    for layer in manifest["layers"]:
        kind = "document" if "document" in layer["mediaType"] else "layer"
        kinds.setdefault("blobs/sha256/" + layer["digest"].removeprefix("sha256:"), kind)
    return kinds


@pytest.mark.parametrize("kind", ["manifest", "config", "document", "layer"])
def test_a_flipped_byte_is_refused(cli, homes: Homes, bundle: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    target = next(name for name, k in blob_kinds(bundle).items() if k == kind)
    items = members(bundle)
    items = [(m, data[:-1] + bytes([data[-1] ^ 1]) if m.name == target else data) for m, data in items]
    write_members(bundle, items)
    refused(cli, homes, bundle, "does not match its digest")


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.5, 0.7, 0.95, 0.999])
def test_a_truncated_bundle_is_refused(cli, homes: Homes, bundle: Path, fraction: float) -> None:  # type: ignore[no-untyped-def]
    with tarfile.open(bundle) as tar:
        last = tar.getmembers()[-1]
        end = last.offset_data + last.size  # past it, only padding: cutting that loses nothing
    bundle.write_bytes(bundle.read_bytes()[: int(end * fraction)])
    refused(cli, homes, bundle, "bundle")


def test_a_bundle_cut_between_members_is_refused(cli, homes: Homes, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    write_members(bundle, members(bundle)[:-1])  # a complete tar, one blob short
    refused(cli, homes, bundle, "is incomplete")


def test_consistently_rewritten_content_is_refused(cli, homes: Homes, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    """Whoever rewrites a document and every digest above it still cannot keep the snapshot's id."""
    kinds = blob_kinds(bundle)
    items = dict((m.name, (m, data)) for m, data in members(bundle))
    document = next(name for name, k in kinds.items() if k == "document")
    new_doc = items[document][1].replace(b"make a file", b"delete everything")
    write_members(bundle, list(rehash(items, document, new_doc).values()))
    refused(cli, homes, bundle, "does not match its manifest")


def rehash(
    items: dict[str, tuple[tarfile.TarInfo, bytes]], name: str, data: bytes
) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    """Replace blob ``name`` by ``data`` and every digest that names it, up to index.json (ids stay)."""
    old, new = "sha256:" + name.rsplit("/", 1)[1], ids.digest_bytes(data)
    info, _ = items.pop(name)
    info.name = "blobs/sha256/" + new.removeprefix("sha256:")
    items[info.name] = (info, data)
    while holder := next((k for k, (_, body) in items.items() if old.encode() in body), None):
        fixed = ids.canonical_json(_replace(json.loads(items[holder][1]), old, new, len(data)))
        if holder == "index.json":
            items[holder] = (items[holder][0], fixed)
        else:
            rehash(items, holder, fixed)
    return items


def _replace(value: object, old: str, new: str, size: int) -> object:
    if isinstance(value, dict):
        if value.get("digest") == old:
            value["size"] = size
        return {k: _replace(v, old, new, size) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, old, new, size) for v in value]
    return new if value == old else value


def test_a_tampered_workspace_version_is_refused(cli, homes: Homes, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    kinds = blob_kinds(bundle)
    items = dict((m.name, (m, data)) for m, data in members(bundle))
    config = next(name for name, k in kinds.items() if k == "config")
    records = json.loads(items[config][1])
    version = records["workspace_versions"][0]
    version["versions"]["testfiles"] = records["workspace_versions"][1]["versions"]["testfiles"]
    new = ids.canonical_json(records)
    write_members(bundle, list(rehash(items, config, new).values()))
    refused(cli, homes, bundle, "does not match its resource versions")


def test_records_of_a_newer_domarkx_say_to_upgrade(cli, homes: Homes, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    kinds = blob_kinds(bundle)
    items = dict((m.name, (m, data)) for m, data in members(bundle))
    config = next(name for name, k in kinds.items() if k == "config")
    records = json.loads(items[config][1])
    records["domarkx"] = 99
    write_members(bundle, list(rehash(items, config, ids.canonical_json(records)).values()))
    refused(cli, homes, bundle, "newer domarkx")


def test_links_and_odd_names_in_the_tar_are_never_written(cli, homes: Homes, bundle: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    items = members(bundle)
    evil = tarfile.TarInfo("../../escaped.txt")
    link = tarfile.TarInfo("blobs/sha256/" + "0" * 64)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    write_members(bundle, [(evil, b"gotcha"), *items])
    home = homes.use("receiver")
    assert cli("load", str(bundle)).code == 0  # unknown entries are skipped
    assert not list(home.parent.rglob("escaped.txt")) and not list(tmp_path.rglob("escaped.txt"))
    write_members(bundle, [(link, b""), *items])
    refused(cli, homes, bundle, "not a regular file")


def test_what_is_not_a_bundle(cli, homes: Homes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    homes.use("b")
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\x00garbage" * 100)
    assert "not a readable bundle" in cli("load", str(garbage)).err
    image = tmp_path / "image.tar"
    manifest = ids.canonical_json(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {}, "layers": []}
    )
    digest = ids.digest_bytes(manifest)
    index = {"manifests": [{"digest": digest, "artifactType": "application/vnd.domarkx.session.v1+json"}]}
    write_members(
        image,
        [
            (tarfile.TarInfo("oci-layout"), b'{"imageLayoutVersion":"1.0.0"}'),
            (tarfile.TarInfo("index.json"), json.dumps(index).encode()),
            (tarfile.TarInfo("blobs/sha256/" + hashlib.sha256(manifest).hexdigest()), manifest),
        ],
    )
    result = cli("load", str(image))
    assert result.code == 1 and "not a domarkx session" in result.err
    missing = cli("load", str(tmp_path / "nope.tar"))
    assert missing.code == 2 and "no such file" in missing.err


def test_a_plugin_missing_here_is_named(  # type: ignore[no-untyped-def]
    cli, homes: Homes, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered = [p for p in sys.path if (Path(p) / "domarkx_test_files-0.dist-info").is_dir()]
    assert registered
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in registered])
    _entrypoints._group.cache_clear()
    refused(cli, homes, bundle, "testfiles")


def test_a_failing_plugin_import_leaves_nothing(  # type: ignore[no-untyped-def]
    cli, homes: Homes, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import files_plugin

    real = files_plugin.FilesPlugin.import_versions

    def half_then_fail(self, layers):  # type: ignore[no-untyped-def]
        real(self, layers[:1])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_plugin.FilesPlugin, "import_versions", half_then_fail)
    refused(cli, homes, bundle, "No space left on device")
    monkeypatch.setattr(files_plugin.FilesPlugin, "import_versions", real)
    assert cli("load", str(bundle)).code == 0  # the retry completes
    assert cli("export", "victim").code == 0


def test_a_failing_workspace_leaves_nothing(  # type: ignore[no-untyped-def]
    cli, homes: Homes, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import files_plugin

    def broken(self, resource_id, version_id):  # type: ignore[no-untyped-def]
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files_plugin.FilesPlugin, "load_version", broken)
    refused(cli, homes, bundle, "Input/output error")


def test_an_instance_cannot_bring_a_workspace_of_its_own(cli, homes: Homes, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    """Powers are judged on the document; a workspace the document does not ask for is refused."""
    kinds = blob_kinds(bundle)
    items = dict((m.name, (m, data)) for m, data in members(bundle))
    config = next(name for name, k in kinds.items() if k == "config")
    records = json.loads(items[config][1])
    records["instances"][0]["workspace"]["resources"][0]["sandbox"] = "none"
    write_members(bundle, list(rehash(items, config, ids.canonical_json(records)).values()))
    refused(cli, homes, bundle, "a workspace its document does not ask for")


def _bad_name(records: dict) -> None:  # type: ignore[type-arg]
    records["instances"][0]["name"] = "../../etc"


def _bad_source(records: dict) -> None:  # type: ignore[type-arg]
    records["snapshots"][0]["source"] = "doc.md\n\x1b[2Jowned"


def _bad_version(records: dict) -> None:  # type: ignore[type-arg]
    version = records["workspace_versions"][0]
    version["versions"] = {"testfiles": "--upload-pack=touch /tmp/pwned"}
    version["id"] = ids.digest_json(version["versions"])


@pytest.mark.parametrize("spoil", [_bad_name, _bad_source, _bad_version], ids=["name", "source", "version"])
def test_hostile_records_are_refused(cli, homes: Homes, bundle: Path, spoil) -> None:  # type: ignore[no-untyped-def]
    kinds = blob_kinds(bundle)
    items = dict((m.name, (m, data)) for m, data in members(bundle))
    config = next(name for name, k in kinds.items() if k == "config")
    records = json.loads(items[config][1])
    spoil(records)
    write_members(bundle, list(rehash(items, config, ids.canonical_json(records)).values()))
    refused(cli, homes, bundle, "the session records are invalid")


def test_what_the_sender_keeps_to_itself(cli, homes: Homes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Directories of the source path stay home; control characters in its name are not passed on."""
    homes.use("a")
    folder = tmp_path / "private" / "client-x"
    folder.mkdir(parents=True)
    doc = folder / "odd\x1bname.md"
    doc.write_text("## user\n\n> hi\n")
    snapshot = cli("import", str(doc)).out.strip().splitlines()[-1]
    bundle = saved(cli, tmp_path, snapshot)
    assert b"client-x" not in bundle.read_bytes() and b"\x1b" not in bundle.read_bytes()
    homes.use("b")
    assert cli("load", str(bundle)).code == 0
    assert json.loads(cli("snapshots", "ls", "--json").out)[0]["source"] == "odd?name.md"


@pytest.mark.parametrize("where", ["import_versions", "load_version"])
def test_a_load_killed_midway_leaves_nothing_visible(  # type: ignore[no-untyped-def]
    cli, homes: Homes, bundle: Path, tmp_path: Path, testfiles_site: Path, where: str
) -> None:
    """kill -9 while the plugin takes its layers, or while the workspace is made: no session appears, a retry loads."""
    import signal
    import time

    home = homes.use("receiver")
    assert cli("snapshots", "ls").code == 0
    before = visible_state(home)
    marker = tmp_path / "paused"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(testfiles_site), str(Path(__file__).parent)]),
        "DOMARKX_TESTFILES_PAUSE": f"{where}:{marker}",
    }
    process = subprocess.Popen([sys.executable, "-m", "domarkx", "load", str(bundle)], env=env)
    deadline = time.monotonic() + 60
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the load never reached the pause"
    process.send_signal(signal.SIGKILL)
    process.wait()
    after = visible_state(home)
    for table in ("snapshots", "tags", "instances", "messages"):
        assert after[table] == before[table]
    repaired = cli("doctor", "--repair")
    assert repaired.code == 0, repaired
    assert cli("load", str(bundle)).code == 0
    assert cli("export", "victim").code == 0
    assert visible_state(home)["scratch"] == []  # the killed load's scratch space was swept


def test_saving_from_a_damaged_store_says_run_doctor(cli, make_session, domarkx_home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    make_session(name="damaged")
    db = sqlite3.connect(domarkx_home / "store.db")
    db.execute("DELETE FROM workspace_versions WHERE id = (SELECT head_version FROM instances)")
    db.commit()
    db.close()
    result = cli("save", "damaged", "-o", str(tmp_path / "out.tar"))
    assert result.code == 1 and "missing from the store" in result.err and "domarkx doctor" in result.err
    assert not (tmp_path / "out.tar").exists()


def test_fork_lineage_travels_when_the_parent_does(cli, homes: Homes, make_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    homes.use("a")
    parent = make_session(name="parent")
    child = cli("fork", "parent", "--at", "3", "--name", "child", "-q").out.strip()
    both, alone = tmp_path / "both.tar", tmp_path / "alone.tar"
    assert cli("save", "parent", "child", "-o", str(both)).code == 0
    assert cli("save", "child", "-o", str(alone)).code == 0

    def lineage() -> dict[str, object]:
        rows = json.loads(cli("instances", "ls", "--json").out)
        return {r["id"]: (r["parent_id"], r["parent_at"]) for r in rows}

    homes.use("b")
    assert cli("load", str(both)).code == 0
    assert lineage()[child] == (parent, 3)
    homes.use("c")
    assert cli("load", str(alone)).code == 0
    assert lineage()[child] == (None, None)  # its parent stayed home


def test_two_loads_of_one_bundle_at_once(cli, homes: Homes, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    """Both succeed, one copy of each session is stored, and the loser's workspace is not left behind."""
    import threading

    from domarkx.data.store import Store
    from domarkx.transfer import load

    homes.use("receiver")
    errors: list[BaseException] = []

    def one() -> None:
        try:
            with Store() as store, bundle.open("rb") as fh:
                load(store, fh, where="bundle", again="domarkx load --trust bundle")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(json.loads(cli("instances", "ls", "--json").out)) == 1
    doctor = cli("doctor", "--json")
    assert doctor.code == 0 and json.loads(doctor.out)["leftovers"] == [], doctor
