"""SnapshotManager: build (expand, parse, hash), save idempotently, read back, list, tag, remove."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from domarkx.data.models import FORMAT_VERSION, SessionSnapshot
from domarkx.data.store import Store
from domarkx.errors import DocumentError, ReferenceNotFound, UsageError
from domarkx.session.snapshot import SnapshotManager, read_source

DOC = """\
---
title: Snapshot test
---

```session-config
{"timeout": 5}
```

```workspace-config
resources:
  - type: local_shell
```

## user

> List the files.

## assistant

```bash name=ls.sh
ls
```
"""


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[SnapshotManager]:
    with Store(tmp_path / "home") as store:
        yield SnapshotManager(store)


def build(
    manager: SnapshotManager, text: str, path: str = "doc.md", variables: Mapping[str, str] | None = None
) -> SessionSnapshot:
    return manager.build(text.encode("utf-8"), path=path, base_dir=Path.cwd(), variables=variables)


def blob_count(manager: SnapshotManager) -> int:
    return sum(1 for p in manager.store.blobs.rglob("*") if p.is_file())


def expected_id(document: bytes) -> str:
    """The documented id: sha256 of the canonical JSON manifest (computed here without domarkx.ids)."""
    manifest = {
        "document": "sha256:" + hashlib.sha256(document).hexdigest(),
        "format": FORMAT_VERSION,
        "workspace_state": None,
    }
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_id_is_the_sha256_of_the_canonical_manifest(manager: SnapshotManager) -> None:
    snapshot = build(manager, DOC)

    assert snapshot.id == expected_id(DOC.encode("utf-8"))
    assert [m.role for m in snapshot.messages] == ["user", "assistant"]


def test_id_ignores_where_the_document_came_from(manager: SnapshotManager) -> None:
    first = build(manager, DOC, path="a/doc.md")
    second = build(manager, DOC, path="b/copy.md")
    different = build(manager, DOC + "\n")

    assert first.id == second.id
    assert first.source != second.source
    assert different.id != first.id


def test_save_twice_stores_nothing_new(manager: SnapshotManager) -> None:
    snapshot = build(manager, DOC)

    assert manager.save(snapshot) is True
    blobs = blob_count(manager)
    assert blobs == 2  # the document and its structure

    assert manager.save(build(manager, DOC, path="elsewhere.md")) is False
    assert blob_count(manager) == blobs
    assert [i.id for i in manager.store.snapshots.listing()] == [snapshot.id]
    assert manager.store.snapshots.listing()[0].source == "doc.md"


def test_saved_snapshot_reads_back(manager: SnapshotManager) -> None:
    snapshot = build(manager, DOC)
    manager.save(snapshot)

    assert manager.document(snapshot.id) == DOC
    stored = manager.get(snapshot.id)
    assert stored == snapshot
    assert stored.workspace_config is not None
    assert stored.workspace_config.resources[0].type == "local_shell"


def test_crlf_and_bom_survive_storage(manager: SnapshotManager) -> None:
    text = "\ufeff" + DOC.replace("\n", "\r\n")
    snapshot = build(manager, text)
    manager.save(snapshot)

    assert manager.document(snapshot.id).encode("utf-8") == text.encode("utf-8")
    assert snapshot.id == expected_id(text.encode("utf-8"))


def test_references_by_prefix_and_tag(manager: SnapshotManager) -> None:
    snapshot = build(manager, DOC)
    manager.save(snapshot, tags=["demo", "v1"])
    hexd = snapshot.id.removeprefix("sha256:")

    for ref in (snapshot.id, hexd, hexd[:4], hexd[:12], "demo", "v1"):
        assert manager.resolve(ref) == snapshot.id
        assert manager.document(ref) == DOC
    with pytest.raises(ReferenceNotFound):
        manager.resolve(hexd[:3])


def test_tags_move_on_save_and_on_tag(manager: SnapshotManager) -> None:
    old = build(manager, DOC)
    new = build(manager, DOC + "\n## user\n\nmore\n")
    manager.save(old, tags=["latest"])
    manager.save(new, tags=["latest"])

    assert manager.resolve("latest") == new.id
    assert manager.tag(old.id[:12], "latest") == old.id
    assert manager.resolve("latest") == old.id
    assert {i.id: i.tags for i in manager.store.snapshots.listing()} == {old.id: ["latest"], new.id: []}


def test_invalid_tag_stores_nothing(manager: SnapshotManager) -> None:
    with pytest.raises(UsageError, match="invalid tag"):
        manager.save(build(manager, DOC), tags=["ok", "beef"])

    assert manager.store.snapshots.listing() == []
    assert blob_count(manager) == 0


def test_list_and_info(manager: SnapshotManager) -> None:
    snapshot = build(manager, DOC, path="docs/session.md")
    manager.save(snapshot, tags=["demo"])

    (info,) = manager.store.snapshots.listing()
    assert (info.id, info.tags, info.title, info.source) == (
        snapshot.id,
        ["demo"],
        "Snapshot test",
        "docs/session.md",
    )
    assert (info.messages, info.size) == (2, len(DOC.encode("utf-8")))

    details = manager.store.snapshots.inspect(manager.resolve("demo"))
    assert details["manifest"] == {
        "format": FORMAT_VERSION,
        "document": "sha256:" + hashlib.sha256(DOC.encode("utf-8")).hexdigest(),
        "workspace_state": None,
    }
    assert details["front_matter"] == {"title": "Snapshot test"}
    assert details["session_config"] == {"timeout": 5}
    assert details["workspace_config"] == {"resources": [{"type": "local_shell"}]}
    assert details["roles"] == ["user", "assistant"]
    assert details["setup"] is None


def test_remove_then_prune_frees_the_blobs(manager: SnapshotManager) -> None:
    keep = build(manager, "## user\n\nkeep me\n")
    drop = build(manager, DOC)
    manager.save(keep)
    manager.save(drop, tags=["gone"])

    assert manager.remove("gone") == (drop.id, True)
    assert [i.id for i in manager.store.snapshots.listing()] == [keep.id]
    with pytest.raises(ReferenceNotFound):
        manager.resolve("gone")
    assert blob_count(manager) == 4

    count, freed = manager.store.prune()
    assert count == 2
    assert freed > len(DOC)
    assert blob_count(manager) == 2
    assert manager.document(keep.id) == "## user\n\nkeep me\n"


def test_remove_refuses_a_snapshot_in_use(manager: SnapshotManager) -> None:
    snapshot = build(manager, DOC)
    manager.save(snapshot)
    with manager.store.write() as db:
        db.execute(
            "INSERT INTO instances(id, snapshot_id, workspace_id, status, created)"
            " VALUES ('i1', ?, 'w1', 'stopped', 0)",
            (snapshot.id,),
        )

    with pytest.raises(UsageError, match="used by 1 instance"):
        manager.remove(snapshot.id)
    manager.tag(snapshot.id, "in-use")
    assert manager.remove(snapshot.id, force=True) == (snapshot.id, False)  # only its tags go
    assert manager.store.snapshots.row(snapshot.id).tags == []


# -- macros are expanded once, at import --------------------------------------------


def test_variables_expand_into_the_stored_document(manager: SnapshotManager) -> None:
    template = "## user\n\nHello [@who](domarkx://var)!\n"
    snapshot = build(manager, template, variables={"who": "Ada"})
    manager.save(snapshot)

    assert manager.document(snapshot.id) == "## user\n\nHello Ada!\n"
    assert snapshot.messages[0].text == "Hello Ada!"
    assert snapshot.id == expected_id(b"## user\n\nHello Ada!\n")


def test_include_reads_beside_the_document(manager: SnapshotManager, tmp_path: Path) -> None:
    (tmp_path / "part.md").write_text("included line\n", encoding="utf-8")
    data = b"## user\n\n[@part](domarkx://include?path=part.md)\n"

    snapshot = manager.build(data, path="doc.md", base_dir=tmp_path)

    assert snapshot.document == "## user\n\nincluded line\n"


def test_unknown_macro_is_a_document_error_and_nothing_is_stored(manager: SnapshotManager) -> None:
    with pytest.raises(DocumentError) as info:
        build(manager, "## user\n\nSee [@x](domarkx://frobnicate?a=1).\n", path="t.md")
    err = info.value

    assert err.format() == "t.md:3:5: error: unknown macro 'frobnicate'"
    assert err.hint is not None
    assert err.hint.startswith("known macros: ")
    assert "include" in err.hint
    assert manager.store.snapshots.listing() == []


def test_not_utf8_is_a_document_error(manager: SnapshotManager) -> None:
    with pytest.raises(DocumentError) as info:
        manager.build(b"## user\n\ncaf\xe9\n", path="latin.md", base_dir=Path.cwd())

    assert info.value.format() == "latin.md:3:4: error: not UTF-8 text (byte 0xe9)"


# -- reading the source ---------------------------------------------------------------


def test_read_source_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_bytes(b"## user\r\n")

    data, path, base = read_source(str(tmp_path / "doc.md"))

    assert (data, path, base) == (b"## user\r\n", str(tmp_path / "doc.md"), tmp_path.resolve())


def test_read_source_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"## user\n\nhi\n")))

    data, path, base = read_source("-")

    assert (data, path, base) == (b"## user\n\nhi\n", "<stdin>", Path.cwd())


def test_read_source_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file") as missing:
        read_source(str(tmp_path / "absent.md"))
    assert missing.value.hint

    with pytest.raises(UsageError, match="is a directory") as directory:
        read_source(str(tmp_path))
    assert directory.value.hint
