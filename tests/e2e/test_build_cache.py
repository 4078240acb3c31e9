"""The build cache: ``run`` reuses executions this store performed, and is correct before it is fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domarkx.data.store import Store
from domarkx.workspace.plugins.local_shell import LocalShellPlugin

MESSAGES = 8


def chain(edits: dict[int, str] | None = None, *, prose: str = "step") -> str:
    """A document whose every assistant message builds on the one before (so an edit must re-run the rest)."""
    edits = edits or {}
    parts = ['```session-config\n{"timeout": 30}\n```\n']
    for n in range(MESSAGES):
        code = edits.get(n, f"echo $(( $(cat n 2>/dev/null || echo 0) + {n + 1} )) > n; cat n")
        parts.append(f"## user\n\n> {prose} {n}\n\n## assistant\n\n> doing {n}\n\n```bash\n{code}\n```\n")
    return "\n".join(parts)


def run(cli, tmp_path: Path, text: str, *args: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    doc = tmp_path / "doc.md"
    doc.write_text(text)
    result = cli("run", str(doc), "--json", *args)
    assert result.code == 0, result
    report: dict = json.loads(result.out)  # type: ignore[type-arg]
    report["versions"] = [e["workspace_version"] for e in json.loads(cli("log", report["instance"], "--json").out)]
    report["stdout"] = result.out
    return report


def assistant(n: int) -> int:
    """The message index of the n-th assistant message of :func:`chain`."""
    return 2 * n + 1


def test_a_second_run_is_all_cached_and_no_cache_executes_everything(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = run(cli, tmp_path, chain())
    assert first["cached"] == [] and first["executed"] == [assistant(n) for n in range(MESSAGES)]
    second = run(cli, tmp_path, chain())
    assert second["cached"] == first["executed"] and second["executed"] == []
    assert second["versions"] == first["versions"]
    fresh = run(cli, tmp_path, chain(), "--no-cache")
    assert fresh["cached"] == [] and fresh["versions"] == first["versions"]


@pytest.mark.parametrize("k", [0, 3, MESSAGES - 1])
def test_editing_message_k_reuses_the_prefix_and_equals_a_no_cache_run(cli, tmp_path: Path, k: int) -> None:  # type: ignore[no-untyped-def]
    run(cli, tmp_path, chain())  # fills the cache
    edited = chain({k: f"echo edited {k} > e; echo $(( $(cat n 2>/dev/null || echo 0) * 10 )) > n"})
    cached = run(cli, tmp_path, edited)
    assert cached["cached"] == [assistant(n) for n in range(k)]
    assert cached["executed"] == [assistant(n) for n in range(k, MESSAGES)]
    uncached = run(cli, tmp_path, edited, "--no-cache")
    assert cached["versions"] == uncached["versions"]  # the workspace at every message, not just the end
    workspace = lambda r: cli("exec", r["instance"], "--", "cat n e").out  # noqa: E731
    assert workspace(cached) == workspace(uncached)


def test_text_edits_keep_the_cache_across_instances_and_re_imported_exports(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = run(cli, tmp_path, chain())
    exported = cli("export", first["instance"]).out
    edited = exported.replace("> doing 5", "> doing five, as asked").replace("> step 2", "> the second step")
    again = run(cli, tmp_path, edited)
    assert again["executed"] == [] and again["cached"] == first["executed"]
    assert again["versions"] == first["versions"]


def test_the_configuration_and_the_plugin_version_are_part_of_the_key(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    run(cli, tmp_path, chain())
    other_config = run(cli, tmp_path, chain().replace('"timeout": 30', '"timeout": 31'))
    assert other_config["cached"] == []
    monkeypatch.setattr(LocalShellPlugin, "plugin_version", "999")
    newer_plugin = run(cli, tmp_path, chain())
    assert newer_plugin["cached"] == []


def test_failed_messages_are_not_cached(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "flaky.md"
    doc.write_text(chain({2: "echo flaky; exit 1"}))
    assert cli("run", str(doc), "--keep-going").code == 1
    second = cli("run", str(doc), "--keep-going", "--json")
    assert second.code == 1
    report = json.loads(second.out)
    assert report["executed"] == [assistant(2)]  # tried again: a failure may be transient
    assert report["cached"] == [assistant(n) for n in range(MESSAGES) if n != 2]


def test_versions_a_document_claims_are_not_trusted(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An export edited to claim another message's version: the run links what it really made."""
    first = run(cli, tmp_path, chain())
    exported = cli("export", first["instance"]).out
    v1, v6 = first["versions"][assistant(1)], first["versions"][assistant(6)]
    forged = exported.replace(v1, v6)
    assert forged != exported
    again = run(cli, tmp_path, forged)
    assert again["versions"] == first["versions"]


def test_entries_live_only_while_something_links_their_versions(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    first = run(cli, tmp_path, chain())
    second = run(cli, tmp_path, chain({MESSAGES - 1: "echo last > n"}))
    with Store(domarkx_home) as store:
        assert store.build_cache.count() == MESSAGES + 1
    assert cli("instances", "rm", "-f", first["instance"]).code == 0
    with Store(domarkx_home) as store:
        store.versions.drop_unlinked()  # what prune does with versions nothing links
        assert store.build_cache.count() == MESSAGES  # the first run's last execution: its result is gone
    assert cli("instances", "rm", "-f", second["instance"]).code == 0
    assert cli("prune").code == 0
    with Store(domarkx_home) as store:
        store.versions.drop_unlinked()
        assert store.build_cache.count() == 0
    again = run(cli, tmp_path, chain())
    assert again["cached"] == []  # nothing is reused from versions the store no longer has
