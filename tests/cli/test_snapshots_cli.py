"""`domarkx import / export / snapshots / prune` through the real entry point.

Most tests call ``main(args)`` in-process (the ``cli`` fixture); the stdin and
exit-code tests run the installed console script, as a user would.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domarkx._version import __version__
from domarkx.data.models import FORMAT_VERSION

Cli = Callable[..., Any]

DOC = """\
---
title: CLI test
---

```session-config
{"timeout": 5}
```

## user

> Count the files.

## assistant

```bash
ls | wc -l
```
"""


def script() -> str:
    """The installed ``domarkx`` console script of the running interpreter's environment."""
    beside = Path(sys.executable).parent / "domarkx"
    found = str(beside) if beside.exists() else shutil.which("domarkx")
    assert found, "the domarkx console script is not installed (pip install -e .)"
    return found


def write(tmp_path: Path, text: str | bytes, name: str = "doc.md") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def import_ok(cli: Cli, path: Path, *args: str) -> str:
    result = cli("import", str(path), *args)
    assert result.code == 0, result.err
    return str(result.out.splitlines()[-1])


def blobs(home: Path) -> list[Path]:
    return sorted(p for p in (home / "blobs").rglob("*") if p.is_file())


def snapshot_ids(cli: Cli) -> list[str]:
    result = cli("snapshots", "ls", "-q")
    assert result.code == 0, result.err
    return list(result.out.split())


def expected_id(document: bytes) -> str:
    manifest = {
        "document": "sha256:" + hashlib.sha256(document).hexdigest(),
        "format": FORMAT_VERSION,
        "workspace_state": None,
    }
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def assert_one_error(err: str, first: str) -> None:
    """Stderr is exactly one error line (matching ``first``) and its hint lines; no traceback."""
    lines = err.rstrip("\n").split("\n")
    assert re.fullmatch(first, lines[0]), lines[0]
    assert lines[1:], "an error needs a hint"
    assert all(line.startswith("  hint: ") for line in lines[1:]), lines
    assert "Traceback" not in err


# -- import ------------------------------------------------------------------------


def test_import_prints_the_id_last(cli: Cli, tmp_path: Path) -> None:
    result = cli("import", str(write(tmp_path, DOC)))

    assert result.code == 0
    assert result.out.splitlines()[-1] == expected_id(DOC.encode())
    assert result.err == "CLI test: 2 messages (new snapshot)\n"


def test_import_twice_gives_the_same_id_and_stores_nothing(cli: Cli, tmp_path: Path, domarkx_home: Path) -> None:
    path = write(tmp_path, DOC)
    first = cli("import", str(path), "--json")
    stored = blobs(domarkx_home)
    second = cli("import", str(path), "--json")

    one, two = json.loads(first.out), json.loads(second.out)
    assert (one["created"], two["created"]) == (True, False)
    assert one["id"] == two["id"] == expected_id(DOC.encode())
    assert set(one) == {"id", "created", "messages", "tags"}
    assert one["messages"] == 2
    assert blobs(domarkx_home) == stored
    assert len(stored) == 2
    assert "unchanged, already stored" in cli("import", str(path)).err


def test_import_with_tags_and_variables(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "## user\n\nHi [@name](domarkx://var)\n")
    result = cli("import", str(path), "-t", "demo", "--tag", "v2", "--set", "name=Ada", "--json")

    assert result.code == 0, result.err
    assert json.loads(result.out)["tags"] == ["demo", "v2"]
    assert cli("export", "v2").out == "## user\n\nHi Ada\n"


def test_quiet_import_prints_only_the_id(cli: Cli, tmp_path: Path) -> None:
    result = cli("import", str(write(tmp_path, DOC)), "-q")

    assert (result.out, result.err) == (expected_id(DOC.encode()) + "\n", "")


def test_stdin_import_through_the_console_script(cli: Cli) -> None:
    done = subprocess.run([script(), "import", "-"], input=DOC.encode(), capture_output=True, check=False)

    assert done.returncode == 0, done.stderr
    snapshot_id = done.stdout.decode().splitlines()[-1]
    assert snapshot_id == expected_id(DOC.encode())
    assert cli("export", snapshot_id).out == DOC
    info = json.loads(cli("snapshots", "inspect", snapshot_id, "--json").out)
    assert info["source"] is None


def test_stdin_error_through_the_console_script(cli: Cli) -> None:
    bad = b'## user\n\n```json msg-metadata\n{"a": }\n```\n'
    done = subprocess.run([script(), "import", "-"], input=bad, capture_output=True, check=False)

    assert done.returncode == 2
    assert done.stdout == b""
    assert_one_error(done.stderr.decode(), r"<stdin>:4:7: error: invalid JSON in msg-metadata: .*")
    assert snapshot_ids(cli) == []


def test_crlf_document_exports_byte_for_byte_on_stdout(cli: Cli, tmp_path: Path) -> None:
    data = ("\ufeff" + DOC.replace("\n", "\r\n")).encode()
    snapshot_id = import_ok(cli, write(tmp_path, data))

    done = subprocess.run([script(), "export", snapshot_id[7:17]], capture_output=True, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout == data


# -- bad input: exit 2, one error line with a hint, nothing stored -----------------

BAD_DOCUMENTS = [
    pytest.param('```session-config\n{"a": 1,}\n```\n', 2, 9, "invalid JSON in session-config", id="session-config"),
    pytest.param(
        '## user\n\n```json msg-metadata\n{"a" 1}\n```\n',
        4,
        6,
        "invalid JSON in msg-metadata",
        id="msg-metadata",
    ),
    pytest.param(
        "```workspace-config\nresources:\n  - type: local_shell\n    name: [x\n```\n",
        5,
        1,
        "invalid YAML in workspace-config",
        id="workspace-config-yaml",
    ),
    pytest.param("---\ntitle: a: b\n---\n", 2, 9, "invalid YAML in front matter", id="front-matter-yaml"),
    pytest.param(
        "```workspace-config\nresources:\n  - name: x\n```\n",
        3,
        1,
        "workspace-config: resources.0.type: Field required",
        id="resource-without-type",
    ),
    pytest.param(
        "```workspace-config\nresources:\n  - type: nope\n```\n",
        3,
        1,
        "unknown resource type 'nope'",
        id="resource-unknown-type",
    ),
    pytest.param("## user\n\n> [@x](domarkx://nosuchmacro)\n", 3, 3, "unknown macro 'nosuchmacro'", id="unknown-macro"),
    pytest.param(b"## user\n\n\xff\xfe\n", 3, 1, "not UTF-8 text", id="not-utf8"),
    pytest.param(
        "## user\n\nhi\n\n## assistant\n\n```python\nprint(1)\n",
        7,
        1,
        "code fence ``` opened here is never closed",
        id="unterminated-fence",
    ),
    pytest.param(
        f"---\ndomarkx-format: {FORMAT_VERSION + 1}\n---\n",
        2,
        1,
        f"document format {FORMAT_VERSION + 1} is not supported",
        id="newer-format",
    ),
]


@pytest.mark.parametrize(("content", "line", "col", "message"), BAD_DOCUMENTS)
def test_bad_document(
    cli: Cli, tmp_path: Path, domarkx_home: Path, content: str | bytes, line: int, col: int, message: str
) -> None:
    existing = import_ok(cli, write(tmp_path, DOC, "good.md"))
    stored = blobs(domarkx_home)
    path = write(tmp_path, content, "bad.md")

    result = cli("import", str(path))

    assert result.code == 2
    assert result.out == ""
    assert_one_error(result.err, rf"{re.escape(str(path))}:{line}:{col}: error: {re.escape(message)}.*")
    assert snapshot_ids(cli) == [existing]
    assert blobs(domarkx_home) == stored


def test_unknown_resource_type_hint_lists_the_known_ones(cli: Cli, tmp_path: Path) -> None:
    result = cli("import", str(write(tmp_path, "```workspace-config\nresources:\n  - type: nope\n```\n")))

    hint = result.err.splitlines()[1]
    assert hint.startswith("  hint: known types: ")
    assert "local_shell" in hint.split(": ", 2)[2].split(", ")


@pytest.mark.parametrize(
    ("args", "first"),
    [
        pytest.param(["import", "absent.md"], r"error: no such file: absent\.md", id="missing-file"),
        pytest.param(["import", "."], r"error: \. is a directory, not a document", id="directory"),
        pytest.param(["import", "{doc}", "--set", "oops"], r"error: --set expects KEY=VALUE.*", id="bad-set"),
        pytest.param(["import", "{doc}", "--set", "nobody=x"], r"error: --set nobody: .*", id="unused-set"),
        pytest.param(["import", "{doc}", "-t", "cafe"], r"error: invalid tag 'cafe'", id="hex-tag"),
        pytest.param(["import", "{doc}", "-t", "has space"], r"error: invalid tag 'has space'", id="bad-tag"),
    ],
)
def test_bad_import_arguments(cli: Cli, tmp_path: Path, domarkx_home: Path, args: list[str], first: str) -> None:
    doc = write(tmp_path, DOC)
    result = cli(*[a.replace("{doc}", str(doc)) for a in args])

    assert result.code == 2
    assert_one_error(result.err, first)
    assert snapshot_ids(cli) == []
    assert blobs(domarkx_home) == []


# -- references ----------------------------------------------------------------------


def colliding_documents() -> tuple[str, str]:
    """Two documents whose snapshot ids share their first 4 hex digits."""
    seen: dict[str, str] = {}
    for n in range(100_000):
        doc = f"## user\n\n> note {n}\n"
        prefix = expected_id(doc.encode())[7:11]
        if prefix in seen:
            return seen[prefix], doc
        seen[prefix] = doc
    raise AssertionError("no collision found")


def test_ambiguous_and_unique_prefixes(cli: Cli, tmp_path: Path) -> None:
    first_doc, second_doc = colliding_documents()
    first = import_ok(cli, write(tmp_path, first_doc, "a.md"))
    second = import_ok(cli, write(tmp_path, second_doc, "b.md"))
    shared = first[7:11]

    for args in (["export", shared], ["snapshots", "inspect", shared], ["snapshots", "rm", shared]):
        result = cli(*args)
        assert result.code == 2, args
        assert_one_error(result.err, r"error: .*" + shared + ".*")
    assert sorted(snapshot_ids(cli)) == sorted([first, second])

    unique = first[7:] if first[11] == second[11] else first[7:12]
    assert cli("export", unique).out == first_doc


@pytest.mark.parametrize(
    "args",
    [
        ["export", "beef"],
        ["export", "no-such-tag"],
        ["snapshots", "inspect", "beef"],
        ["snapshots", "tag", "beef", "x1"],
        ["snapshots", "rm", "beef"],
        ["snapshots", "inspect", "abc"],
    ],
)
def test_unknown_reference(cli: Cli, tmp_path: Path, args: list[str]) -> None:
    import_ok(cli, write(tmp_path, DOC))

    result = cli(*args)

    assert result.code == 2
    assert_one_error(result.err, r"error: no .*")


# -- snapshots ls / inspect / tag / rm, prune, export -------------------------------


def test_reference_forms_work_everywhere(cli: Cli, tmp_path: Path) -> None:
    snapshot_id = import_ok(cli, write(tmp_path, DOC), "-t", "demo")
    hexd = snapshot_id.removeprefix("sha256:")

    for ref in (snapshot_id, hexd, hexd[:4], "demo"):
        assert cli("export", ref).out == DOC
        assert json.loads(cli("snapshots", "inspect", ref, "--json").out)["id"] == snapshot_id
    assert cli("snapshots", "tag", hexd[:4], "other").out == f"other -> {snapshot_id}\n"


def test_ls_json_and_table(cli: Cli, tmp_path: Path) -> None:
    snapshot_id = import_ok(cli, write(tmp_path, DOC), "-t", "demo")

    (row,) = json.loads(cli("snapshots", "ls", "--json").out)
    assert set(row) == {"id", "tags", "title", "source", "messages", "size", "created"}
    assert (row["id"], row["tags"], row["title"], row["messages"], row["size"]) == (
        snapshot_id,
        ["demo"],
        "CLI test",
        2,
        len(DOC.encode()),
    )
    header, line = cli("snapshots", "ls").out.splitlines()
    assert header.split() == ["ID", "TAGS", "TITLE", "MESSAGES", "SIZE", "CREATED"]
    assert line.startswith(snapshot_id[7:19] + "   demo   CLI test")


def test_inspect_json(cli: Cli, tmp_path: Path) -> None:
    import_ok(cli, write(tmp_path, DOC), "-t", "demo")

    info = json.loads(cli("snapshots", "inspect", "demo", "--json").out)

    assert {"id", "tags", "manifest", "front_matter", "session_config", "workspace_config", "roles"} <= set(info)
    assert info["manifest"]["document"] == "sha256:" + hashlib.sha256(DOC.encode()).hexdigest()
    assert info["roles"] == ["user", "assistant"]
    assert info["session_config"] == {"timeout": 5}
    text = cli("snapshots", "inspect", "demo").out
    assert "messages:  2 (user, assistant)" in text


def test_tag_moves_between_snapshots(cli: Cli, tmp_path: Path) -> None:
    old = import_ok(cli, write(tmp_path, DOC, "old.md"), "-t", "current")
    new = import_ok(cli, write(tmp_path, DOC + "\n## user\n\nagain\n", "new.md"))

    assert cli("snapshots", "tag", new, "current").code == 0
    tags = {row["id"]: row["tags"] for row in json.loads(cli("snapshots", "ls", "--json").out)}
    assert tags == {old: [], new: ["current"]}
    bad = cli("snapshots", "tag", new, "beef")
    assert bad.code == 2
    assert_one_error(bad.err, r"error: invalid tag 'beef'")


def test_rm_then_prune(cli: Cli, tmp_path: Path, domarkx_home: Path) -> None:
    keep = import_ok(cli, write(tmp_path, "## user\n\nkeep\n", "keep.md"))
    drop = import_ok(cli, write(tmp_path, DOC, "drop.md"), "-t", "drop-me")
    assert len(blobs(domarkx_home)) == 4

    removed = cli("snapshots", "rm", "drop-me")
    assert (removed.code, removed.out) == (0, f"removed {drop}\n")
    assert snapshot_ids(cli) == [keep]

    dry = json.loads(cli("prune", "--dry-run", "--json").out)
    assert (dry["blobs"], dry["dry_run"]) == (2, True)
    assert len(blobs(domarkx_home)) == 4
    pruned = json.loads(cli("prune", "--json").out)
    assert set(pruned) == {
        "bytes",
        "blobs",
        "blob_bytes",
        "versions",
        "plugins",
        "database_bytes",
        "workspaces",
        "notes",
        "dry_run",
    }
    assert (pruned["blobs"], pruned["dry_run"]) == (2, False)
    assert pruned["blob_bytes"] > len(DOC)
    assert pruned["bytes"] >= pruned["blob_bytes"]
    assert len(blobs(domarkx_home)) == 2
    assert cli("export", keep).out == "## user\n\nkeep\n"
    assert cli("prune").out.startswith("freed 0B: 0 blobs (0B), 0 workspace versions, database")


def test_export_to_a_file(cli: Cli, tmp_path: Path) -> None:
    import_ok(cli, write(tmp_path, DOC), "-t", "demo")
    target = tmp_path / "out" / "exported.md"
    target.parent.mkdir()

    result = cli("export", "demo", "-o", str(target))

    assert (result.code, result.out) == (0, "")
    assert target.read_bytes() == DOC.encode()
    assert [p.name for p in target.parent.iterdir()] == ["exported.md"]


def test_export_into_a_missing_directory(cli: Cli, tmp_path: Path) -> None:
    import_ok(cli, write(tmp_path, DOC), "-t", "demo")

    result = cli("export", "demo", "-o", str(tmp_path / "nowhere" / "x.md"))

    assert result.code == 2
    assert "its directory does not exist" in result.err


# -- the command line itself -----------------------------------------------------------


def test_help_and_version(cli: Cli) -> None:
    top = cli("--help")
    assert top.code == 0
    for command in ("import", "export", "snapshots", "prune"):
        assert re.search(rf"^\s+{command}\s", top.out, re.MULTILINE), command
    assert "domarkx run talk.md --model" in top.out

    assert "Examples:" in cli("import", "--help").out
    assert cli("snapshots", "--help").code == 0

    version = cli("--version")
    assert (version.code, version.out) == (0, f"domarkx, version {__version__}\n")


def test_unknown_command_and_option(cli: Cli) -> None:
    unknown = cli("frobnicate")
    assert unknown.code == 2
    assert "error: no such command 'frobnicate'" in unknown.err

    option = cli("import", "--no-such-option", "x.md")
    assert option.code == 2
    assert "error: no such option" in option.err


def test_console_script_exit_codes() -> None:
    assert subprocess.run([script(), "--version"], capture_output=True, check=False).returncode == 0
    done = subprocess.run([script(), "nonsense"], capture_output=True, check=False)
    assert done.returncode == 2
    assert b"Traceback" not in done.stderr
