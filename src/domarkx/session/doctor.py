"""``domarkx doctor``: re-hash and cross-check the whole store.

It answers one question a user asks after a crash or a full disk: is everything
that was reported as created still intact? Every referenced blob must exist and
hash to its name; every snapshot id must equal the digest of its manifest, whose
document digest must match the stored document; every instance must point at an
existing snapshot and at workspace versions that can be loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from domarkx import ids
from domarkx.data.store import Store


@dataclass
class Report:
    """Problems found, and what ``--repair`` fixed."""

    checked: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(store: Store, *, repair: bool = False) -> Report:
    report = Report()
    _integrity(store, report)
    _blobs(store, report)
    _snapshots(store, report)
    _instances(store, report)
    _temp_files(store, report, repair)
    return report


def _integrity(store: Store, report: Report) -> None:
    result = store.db.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        report.problems.append(f"SQLite integrity check failed: {result}")


def _blobs(store: Store, report: Report) -> None:
    rows = store.db.execute("SELECT digest, group_concat(owner) FROM blob_refs GROUP BY digest").fetchall()
    report.checked["blobs"] = len(rows)
    for digest, owners in rows:
        if not store.verify_blob(digest):
            state = "missing" if not store.blob_path(digest).exists() else "corrupt (hash mismatch)"
            report.problems.append(f"blob {digest} is {state}; needed by {owners}")


def _snapshots(store: Store, report: Report) -> None:
    rows = store.db.execute("SELECT id, manifest, document FROM snapshots").fetchall()
    report.checked["snapshots"] = len(rows)
    for row in rows:
        manifest = json.loads(row["manifest"])
        if ids.digest_json(manifest) != row["id"]:
            report.problems.append(f"snapshot {row['id']}: id does not match its manifest")
        if manifest.get("document") != row["document"]:
            report.problems.append(f"snapshot {row['id']}: manifest names another document blob")


def _instances(store: Store, report: Report) -> None:
    from domarkx.workspace.manager import WorkspaceManager

    workspaces = WorkspaceManager(store)
    rows = store.db.execute("SELECT id, snapshot_id, head_version, initial_version FROM instances").fetchall()
    report.checked["instances"] = len(rows)
    snapshots = {r[0] for r in store.db.execute("SELECT id FROM snapshots")}
    for row in rows:
        label = f"instance {row['id'][:12]}"
        if row["snapshot_id"] not in snapshots:
            report.problems.append(f"{label}: its snapshot {row['snapshot_id']} is gone")
        versions = {row["head_version"], row["initial_version"]}
        for (body,) in store.db.execute("SELECT body FROM messages WHERE instance_id = ?", (row["id"],)):
            versions.add(json.loads(body).get("workspace_version"))
        for version in sorted(v for v in versions if v):
            if not workspaces.has_version(version):
                report.problems.append(f"{label}: workspace version {version} cannot be loaded")


def _temp_files(store: Store, report: Report, repair: bool) -> None:
    leftovers = list(store.tmp.iterdir())
    if not leftovers:
        return
    if repair:
        for path in leftovers:
            path.unlink(missing_ok=True)
        report.repaired.append(f"removed {len(leftovers)} partial write(s) from {store.tmp}")
    else:
        report.problems.append(
            f"{len(leftovers)} partial write(s) in {store.tmp} (left by a crash; --repair removes them)"
        )
