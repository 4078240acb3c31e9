"""push/pull against a real registry (CNCF distribution, Debian's docker-registry) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest
from registry_service import PASSWORD, USER, CountingProxy, Registry
from transfer_helpers import DOC, Homes, log, visible_state, workspace_at


def pushed(cli, ref: str, target: str, *flags: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    result = cli("push", ref, target, "--json", *flags)
    assert result.code == 0, result
    return dict(json.loads(result.out))


def pulled(cli, source: str, *flags: str) -> list[str]:  # type: ignore[no-untyped-def]
    result = cli("pull", source, *flags)
    assert result.code == 0, result
    return list(result.out.split())


def test_two_homes_fork_at_every_message(cli, homes: Homes, make_session, plain_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    """Push from A, pull into B: same ids, same exports, and every message's workspace is A's."""
    target = f"{plain_registry.host}/team/two-homes:v1"
    homes.use("a")
    instance = make_session(name="trip")
    report = pushed(cli, "trip", target, "--insecure")
    assert report["blobs"] == {"uploaded": 6}  # document, four versions (the empty start, 3 messages), records
    export_a, log_a = cli("export", instance).out, log(cli, instance)
    spaces_a = [workspace_at(cli, instance, n) for n in range(len(log_a))]

    homes.use("b")
    assert pulled(cli, target, "--insecure") == [instance]
    assert cli("export", instance).out == export_a
    assert log(cli, instance) == log_a
    assert [workspace_at(cli, instance, n) for n in range(len(log_a))] == spaces_a
    assert cli("doctor").code == 0
    again = cli("pull", target, "--insecure")
    assert again.code == 0 and "already here: instance" in again.err


def test_https_is_the_default(cli, make_session, plain_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    make_session(name="plain")
    result = cli("push", "plain", f"{plain_registry.host}/team/https")
    assert result.code == 1
    assert "does not speak HTTPS" in result.err and "--insecure" in result.err
    monkeypatch.setenv("DOMARKX_INSECURE_REGISTRIES", f"example.org, {plain_registry.host}")
    assert cli("push", "plain", f"{plain_registry.host}/team/https").code == 0


def test_second_push_sends_only_the_change(cli, make_session, plain_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    proxy = CountingProxy(plain_registry.port)
    target = f"{proxy.host}/team/delta:latest"
    make_session(name="delta")
    first = pushed(cli, "delta", target, "--insecure")
    first_bytes = proxy.reset()
    assert first_bytes > int(first["size"])  # type: ignore[call-overload]

    assert cli("exec", "delta", "--", "echo small > note.txt").code == 0
    second = pushed(cli, "delta", target, "--insecure")
    second_bytes = proxy.reset()
    assert second["base"] == first["digest"]
    assert second["blobs"] == {"present": 5, "uploaded": 2}  # the new version's layer and the records
    old = {b["digest"] for b in manifest_of(plain_registry, str(first["digest"]))["layers"]}
    new = [b for b in manifest_of(plain_registry, str(second["digest"]))["blobs"] if b["digest"] not in old]
    manifest_size = plain_registry.blob_file(str(second["digest"])).stat().st_size
    assert second["uploaded"] == sum(b["size"] for b in new) + manifest_size
    assert second_bytes < int(second["uploaded"]) + 20_000  # type: ignore[call-overload]  # HEADs and headers

    unchanged = pushed(cli, "delta", target, "--insecure")
    assert unchanged["uploaded"] == 0 and unchanged["digest"] == second["digest"]
    assert unchanged["blobs"] == {"present": 7}
    assert proxy.reset() < 20_000  # HEAD requests only
    proxy.close()


def manifest_of(registry: Registry, digest: str) -> dict[str, list[dict[str, object]]]:
    manifest = json.loads(registry.blob_file(digest).read_bytes())
    return {"layers": manifest["layers"], "blobs": [manifest["config"], *manifest["layers"]]}


def test_a_tag_moved_by_someone_else(cli, homes: Homes, make_session, plain_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    target = f"{plain_registry.host}/team/moved:shared"
    homes.use("alice")
    mine = make_session(name="mine")
    pushed(cli, "mine", target, "--insecure")
    homes.use("bob")
    theirs = make_session(DOC.replace("echo one", "echo bob"), name="theirs")
    pushed(cli, "theirs", target, "--insecure")  # bob moves the tag

    homes.use("carol")
    assert pulled(cli, target, "--insecure") == [theirs]
    assert cli("exec", theirs, "--", "cat a.txt").out == "bob\nchanged\n"

    homes.use("alice")  # alice pushes again: the tag's artifact is not hers, so nothing of it is reused
    assert cli("exec", "mine", "--", "echo again >> a.txt").code == 0
    again = pushed(cli, "mine", target, "--insecure")
    assert again["base"] is not None and again["blobs"].get("uploaded", 0) >= 1  # type: ignore[attr-defined]
    homes.use("carol")
    assert pulled(cli, target, "--insecure") == [mine]
    assert cli("exec", mine, "--", "cat a.txt").out == "one\nchanged\nagain\n"


def test_a_corrupted_blob_is_refused(cli, homes: Homes, make_session, plain_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    target = f"{plain_registry.host}/team/corrupt:v1"
    homes.use("a")
    make_session(name="victim")
    report = pushed(cli, "victim", target, "--insecure")
    manifest = json.loads(plain_registry.blob_file(str(report["digest"])).read_bytes())
    layer = plain_registry.blob_file(manifest["layers"][-1]["digest"])
    data = layer.read_bytes()
    layer.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))

    home = homes.use("b")
    assert cli("snapshots", "ls").code == 0
    before = visible_state(home)
    result = cli("pull", target, "--insecure")
    assert result.code == 1, result
    assert "does not match its digest" in result.err
    assert visible_state(home) == before
    layer.write_bytes(data)
    assert cli("pull", target, "--insecure").code == 0


def test_killed_mid_push_then_retried(cli, homes: Homes, make_session, own_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    proxy = CountingProxy(own_registry.port)
    target = f"{proxy.host}/team/killed:v1"
    home = homes.use("a")
    instance = make_session(name="killed")
    assert cli("exec", "killed", "--", "head -c 3000000 /dev/urandom > big.bin").code == 0
    before = visible_state(home)
    proxy.when_sent(1_500_000, own_registry.kill)  # in the middle of the big layer
    failed = cli("push", "killed", target, "--insecure")
    assert failed.code == 1, failed
    assert "connection" in failed.err or "cannot reach" in failed.err
    assert visible_state(home) == before  # nothing half-registered here
    assert not (home / "transfer" / "origins.json").exists()

    own_registry.start()
    assert cli("pull", target, "--insecure").code == 2  # no manifest was stored: the tag does not exist
    retried = pushed(cli, "killed", target, "--insecure")
    assert retried["blobs"].get("present", 0) >= 1  # type: ignore[attr-defined]  # what arrived before the kill
    homes.use("b")
    assert pulled(cli, target, "--insecure") == [instance]
    assert cli("exec", instance, "--", "ls").out.split() == ["a.txt", "b.txt", "big.bin", "sub"]
    proxy.close()


def test_cross_repository_mount(cli, make_session, plain_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    make_session(name="mounted")
    pushed(cli, "mounted", f"{plain_registry.host}/team/first", "--insecure")
    assert cli("exec", "mounted", "--", "echo more > more.txt").code == 0
    report = pushed(cli, "mounted", f"{plain_registry.host}/other/second", "--insecure")
    assert report["blobs"] == {"mounted": 5, "uploaded": 2}  # document and old versions mounted; the change, records


def test_chunked_upload(  # type: ignore[no-untyped-def]
    cli, homes: Homes, make_session, plain_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from domarkx.transfer import registry

    monkeypatch.setattr(registry, "CHUNK", 100_000)
    target = f"{plain_registry.host}/team/chunked"
    homes.use("a")
    instance = make_session(name="chunked")
    assert cli("exec", "chunked", "--", "head -c 450000 /dev/urandom > big.bin").code == 0
    pushed(cli, "chunked", target, "--insecure")
    expected = workspace_at(cli, instance, 5)
    homes.use("b")
    assert pulled(cli, target, "--insecure") == [instance]
    assert workspace_at(cli, instance, 5) == expected


def test_pull_by_digest_and_of_a_snapshot(cli, homes: Homes, plain_registry: Registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    homes.use("a")
    doc = tmp_path / "plain.md"
    doc.write_text("## user\n\n> hello\n")
    snapshot = cli("import", str(doc), "-t", "local-name").out.strip().splitlines()[-1]
    report = pushed(cli, "local-name", f"{plain_registry.host}/team/snap:v2", "--insecure")
    homes.use("b")
    assert pulled(cli, f"{plain_registry.host}/team/snap@{report['digest']}", "--insecure") == [snapshot]
    assert pulled(cli, f"{plain_registry.host}/team/snap:v2", "--insecure") == [snapshot]
    tags = json.loads(cli("snapshots", "ls", "--json").out)[0]["tags"]
    assert tags == [f"{plain_registry.host}/team/snap:v2"]  # named by the reference; local names stay home


def test_what_is_not_ours(cli, make_session, plain_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    import httpx2

    base = f"http://{plain_registry.host}/v2/team/image"
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    from domarkx import ids

    digest = ids.digest_bytes(config)
    started = httpx2.post(f"{base}/blobs/uploads/")
    location = httpx2.URL(f"http://{plain_registry.host}").join(started.headers["Location"])
    assert httpx2.put(str(location.copy_merge_params({"digest": digest})), content=config).status_code == 201
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)},
        "layers": [],
    }
    headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    assert httpx2.put(f"{base}/manifests/latest", json=manifest, headers=headers).status_code == 201
    result = cli("pull", f"{plain_registry.host}/team/image", "--insecure")
    assert result.code == 1 and "not a domarkx session" in result.err
    make_session(name="over")
    assert pushed(cli, "over", f"{plain_registry.host}/team/image", "--insecure")["blobs"] == {"uploaded": 6}


def test_bad_references(cli, make_session) -> None:  # type: ignore[no-untyped-def]
    make_session(name="refs")
    for bad, said in [
        ("team/demo", "names no registry"),
        ("localhost:5000/Team/Demo", "invalid repository"),
        ("localhost:5000/demo@sha256:abc", "invalid digest"),
        ("localhost:5000/demo:-bad", "invalid tag"),
    ]:
        result = cli("push", "refs", bad)
        assert result.code == 2 and said in result.err, (bad, result)
    digest = "sha256:" + "0" * 64
    assert "cannot push to a digest" in cli("push", "refs", f"localhost:5000/demo@{digest}").err
    assert cli("push", "nothing-named-so", "localhost:5000/demo").code == 2


def test_a_dead_registry(cli, make_session, own_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    make_session(name="dead-one")
    own_registry.stop()
    result = cli("push", "dead-one", f"{own_registry.host}/team/dead", "--insecure")
    assert result.code == 1
    assert result.err.startswith(f"error: cannot reach the registry {own_registry.host}")
    assert "hint:" in result.err


# -- TLS and credentials -------------------------------------------------------------------------


def login(cli, registry: Registry, password: str = PASSWORD, *flags: str, capsys=None):  # type: ignore[no-untyped-def]
    import io
    import sys

    stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(password.encode() + b"\n"))
    try:
        return cli("login", registry.host, "-u", USER, "--password-stdin", *flags)
    finally:
        sys.stdin = stdin


def test_tls_and_basic_auth_between_two_homes(  # type: ignore[no-untyped-def]
    cli, homes: Homes, make_session, secure_registry: Registry, docker_config: Path
) -> None:
    assert secure_registry.tls is not None
    ca = str(secure_registry.tls[0])
    target = f"{secure_registry.host}/team/secure:v1"
    homes.use("a")
    instance = make_session(name="secure")
    needs = cli("push", "secure", target, "--ca-file", ca)
    assert needs.code == 1 and "needs credentials" in needs.err and "domarkx login" in needs.err

    logged = login(cli, secure_registry, PASSWORD, "--ca-file", ca)
    assert logged.code == 0, logged
    config = docker_config / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert secure_registry.host in json.loads(config.read_text())["auths"]
    pushed(cli, "secure", target, "--ca-file", ca)
    expected = cli("export", instance).out

    homes.use("b")  # the same user on another machine: the credential is in their docker config
    assert pulled(cli, target, "--ca-file", ca) == [instance]
    assert cli("export", instance).out == expected
    assert cli("logout", secure_registry.host).code == 0
    assert secure_registry.host not in json.loads(config.read_text()).get("auths", {})
    assert cli("pull", target, "--ca-file", ca).code == 1


def test_wrong_password(cli, make_session, secure_registry: Registry, docker_config: Path) -> None:  # type: ignore[no-untyped-def]
    assert secure_registry.tls is not None
    result = login(cli, secure_registry, "wrong-password", "--ca-file", str(secure_registry.tls[0]))
    assert result.code == 1
    assert result.err.startswith(f"error: {secure_registry.host} refused the credentials")
    assert "wrong-password" not in result.err + result.out
    assert not (docker_config / "config.json").exists()
    # a wrong password already kept (say, changed since) fails a push the same way
    docker_config.mkdir()
    (docker_config / "config.json").write_text(
        json.dumps({"auths": {secure_registry.host: {"username": USER, "password": "stale"}}})
    )
    make_session(name="wrong")
    push = cli("push", "wrong", f"{secure_registry.host}/team/wrong", "--ca-file", str(secure_registry.tls[0]))
    assert push.code == 1 and "refused the credentials" in push.err and "stale" not in push.err


def test_certificates(cli, make_session, secure_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    assert secure_registry.tls is not None
    make_session(name="certs")
    target = f"{secure_registry.host}/team/certs"
    untrusted = login(cli, secure_registry)
    assert untrusted.code == 1 and "is not trusted" in untrusted.err and "--ca-file" in untrusted.err
    monkeypatch.setenv("SSL_CERT_FILE", str(secure_registry.tls[0]))
    assert login(cli, secure_registry).code == 0
    assert cli("push", "certs", target).code == 0
    monkeypatch.delenv("SSL_CERT_FILE")
    assert cli("push", "certs", target).code == 1
    assert cli("push", "certs", target, "--insecure").code == 0  # no check at all, still TLS
    bad = cli("push", "certs", target, "--ca-file", __file__)
    assert bad.code == 2 and "cannot use --ca-file" in bad.err


def test_a_credential_helper(  # type: ignore[no-untyped-def]
    cli, make_session, secure_registry: Registry, docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker's credential-helper protocol, through a real helper program on PATH."""
    assert secure_registry.tls is not None
    bin_dir, vault = tmp_path / "bin", tmp_path / "vault.json"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-testvault"
    helper.write_text(HELPER.format(vault=str(vault)))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps({"credsStore": "testvault"}))
    ca = str(secure_registry.tls[0])
    assert login(cli, secure_registry, PASSWORD, "--ca-file", ca).code == 0
    assert json.loads(vault.read_text())[secure_registry.host]["Secret"] == PASSWORD
    assert "auths" not in json.loads((docker_config / "config.json").read_text())
    make_session(name="helped")
    assert cli("push", "helped", f"{secure_registry.host}/team/helped", "--ca-file", ca).code == 0
    assert cli("logout", secure_registry.host).code == 0
    assert json.loads(vault.read_text()) == {}


HELPER = """#!/usr/bin/env python3
import json, sys
vault = {vault!r}
try:
    data = json.load(open(vault))
except FileNotFoundError:
    data = {{}}
action = sys.argv[1]
if action == "store":
    entry = json.load(sys.stdin)
    data[entry["ServerURL"]] = entry
elif action == "get":
    server = sys.stdin.read().strip()
    if server not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    json.dump(data[server], sys.stdout)
elif action == "erase":
    data.pop(sys.stdin.read().strip(), None)
json.dump(data, open(vault, "w"))
"""


def test_pushes_from_two_processes_at_once(cli, make_session, plain_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    """Two pushes of one session to one tag at once: both succeed, and the tag names a whole artifact."""
    from domarkx.data.store import Store
    from domarkx.transfer.remote import Connection, push

    make_session(name="racing")
    target = f"{plain_registry.host}/team/racing"
    results: list[object] = []

    def one() -> None:
        with Store() as store:
            results.append(push(store, "racing", target, Connection(insecure=True)))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    assert cli("pull", target, "--insecure").code == 0


# -- Bearer tokens (the flow of Docker Hub, GHCR, Harbor) -------------------------------------


def test_bearer_tokens(cli, homes: Homes, make_session, token_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    assert token_registry.token is not None
    token = token_registry.token
    homes.use("a")
    instance = make_session(name="bearer")
    target = f"{token_registry.host}/team/bearer:v1"
    anonymous = cli("push", "bearer", target, "--insecure")
    assert anonymous.code == 1 and "needs credentials" in anonymous.err
    assert login(cli, token_registry, PASSWORD, "--insecure").code == 0
    assert login(cli, token_registry, "wrong", "--insecure").code == 1
    token.requests.clear()
    pushed(cli, "bearer", target, "--insecure")
    scopes = [scope for _how, asked in token.requests for scope in asked]
    assert "repository:team/bearer:pull,push" in scopes
    assert len(token.requests) <= 3  # one token per scope, kept for the run
    assert cli("exec", "bearer", "--", "echo more > more.txt").code == 0
    token.requests.clear()
    mounted = pushed(cli, "bearer", f"{token_registry.host}/other/bearer", "--insecure")
    assert mounted["blobs"].get("mounted")  # type: ignore[attr-defined]
    assert any("repository:team/bearer:pull" in asked for _how, asked in token.requests)  # the mount's source

    homes.use("b")
    assert pulled(cli, target, "--insecure") == [instance]


def test_an_identity_token(cli, make_session, token_registry: Registry, docker_config: Path) -> None:  # type: ignore[no-untyped-def]
    """A refresh token kept by docker (``identitytoken``) goes through the OAuth2 refresh grant."""
    from registry_service import IDENTITY_TOKEN

    assert token_registry.token is not None
    docker_config.mkdir()
    entry = {"auth": "", "identitytoken": IDENTITY_TOKEN}
    (docker_config / "config.json").write_text(json.dumps({"auths": {token_registry.host: entry}}))
    make_session(name="identity")
    token_registry.token.requests.clear()
    pushed(cli, "identity", f"{token_registry.host}/team/identity", "--insecure")
    assert {how for how, _ in token_registry.token.requests} == {"refresh"}


def test_pushes_stack_even_when_the_head_moves(cli, homes: Homes, make_session, plain_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    """``exec`` replaces the head: the earlier push's layers still count, so each push sends one layer."""
    target = f"{plain_registry.host}/team/stacked"
    homes.use("a")
    instance = make_session(name="stacked")
    for step in range(3):
        assert cli("exec", "stacked", "--", f"echo {step} > step.txt").code == 0
        report = pushed(cli, "stacked", target, "--insecure")
    assert report["blobs"] == {"present": 7, "uploaded": 2}  # type: ignore[comparison-overlap]  # two earlier heads too
    head = cli("exec", "stacked", "--", "cat step.txt").out
    homes.use("b")
    assert pulled(cli, target, "--insecure") == [instance]
    assert cli("exec", instance, "--", "cat step.txt").out == head == "2\n"


def test_a_fresh_push_starts_a_new_stack(cli, make_session, plain_registry: Registry) -> None:  # type: ignore[no-untyped-def]
    target = f"{plain_registry.host}/team/fresh"
    make_session(name="fresh")
    for step in range(2):
        assert cli("exec", "fresh", "--", f"echo {step} > step.txt").code == 0
        stacked = pushed(cli, "fresh", target, "--insecure")
    fresh = pushed(cli, "fresh", target, "--insecure", "--fresh")
    assert fresh["base"] is None and fresh["size"] <= stacked["size"]  # type: ignore[operator]
    assert sum(fresh["blobs"].values()) <= sum(stacked["blobs"].values())  # type: ignore[attr-defined]


# -- plugins whose versions are images (docker_sandbox's way) -------------------------------


def test_image_versions_become_ordinary_images(
    cli, homes: Homes, make_session, plain_registry: Registry, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A plugin layer that is an OCI image layout goes to the registry as images, each pullable by digest."""
    import httpx2

    doc = DOC.replace("type: testfiles", "type: testimages")
    target = f"{plain_registry.host}/team/images:v1"
    homes.use("a")
    instance = make_session(doc, name="images")
    report = pushed(cli, "images", target, "--insecure")
    manifest = json.loads(plain_registry.blob_file(str(report["digest"])).read_bytes())
    images = [d for d in manifest["layers"] if d["mediaType"].endswith("image-layout.manifest.v1+json")]
    assert len(images) == 4  # the empty start and each assistant message
    for image in images:  # stored as manifests: docker can pull each version by digest
        got = httpx2.get(
            f"http://{plain_registry.host}/v2/team/images/manifests/{image['digest']}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert got.status_code == 200 and json.loads(got.content)["config"]["mediaType"].endswith("config.v1+json")
    spaces = [workspace_at(cli, instance, n) for n in range(6)]
    bundle = tmp_path / "images.tar"
    assert cli("save", "images", "-o", str(bundle)).code == 0

    assert cli("exec", "images", "--", "echo more > more.txt").code == 0
    second = pushed(cli, "images", target, "--insecure")
    assert second["blobs"]["uploaded"] == 5  # type: ignore[index]  # the new layout: index, manifest, config, layer; records
    after = [workspace_at(cli, instance, n) for n in range(6)]
    assert after[:5] == spaces[:5] and after[5] != spaces[5]  # the exec follows the last message

    homes.use("b")
    assert pulled(cli, target, "--insecure") == [instance]
    assert [workspace_at(cli, instance, n) for n in range(6)] == after
    assert "more.txt" in cli("exec", instance, "--", "ls").out
    homes.use("c")
    assert cli("load", str(bundle)).code == 0
    assert [workspace_at(cli, instance, n) for n in range(6)] == spaces


def test_blob_downloads_follow_redirects_without_credentials(  # type: ignore[no-untyped-def]
    cli, homes: Homes, make_session, tmp_path: Path, docker_config: Path
) -> None:
    """A registry may send downloads to object storage on another host: the credential must not go there."""
    from registry_service import RedirectingFront, make_htpasswd

    root = tmp_path / "auth-registry"
    root.mkdir()
    registry = Registry(root, htpasswd=make_htpasswd(root)).start()
    front = RedirectingFront(registry)
    try:
        homes.use("a")
        instance = make_session(name="redirected")
        assert login(cli, front, PASSWORD, "--insecure").code == 0
        target = f"{front.host}/team/redirected"
        assert cli("push", "redirected", target, "--insecure").code == 0
        homes.use("b")
        assert pulled(cli, target, "--insecure") == [instance]
        assert len(front.storage_headers) == 6  # every blob came from "storage"
        assert not any("Authorization" in h or "authorization" in h for h in front.storage_headers)
        assert all(h.get("Accept-Encoding") == "identity" for h in front.storage_headers)  # bytes as stored
    finally:
        front.close()
        registry.stop()
