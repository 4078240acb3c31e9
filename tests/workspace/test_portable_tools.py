"""The portable tools on their own: plain functions, a root directory, standard exceptions."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from domarkx.tools.portable import files, shell

PORTABLE = Path(files.__file__).parent


def test_portable_modules_import_nothing_from_domarkx() -> None:
    for module in PORTABLE.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = [
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        ]
        assert not [name for name in imported if name and name.startswith("domarkx")], module.name


# -- files ---------------------------------------------------------------------------


def test_write_then_read_keeps_text_exactly(tmp_path: Path) -> None:
    text = "line one\r\nzwei\n\tünïcode ✓\n"
    assert files.write_file("a/b/c.txt", text, root=str(tmp_path)) == f"wrote {len(text.encode())} bytes to a/b/c.txt"
    assert (tmp_path / "a/b/c.txt").read_bytes() == text.encode("utf-8")
    assert files.read_file("a/b/c.txt", root=str(tmp_path)) == text


def test_read_file_is_capped_with_a_marker(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * 5000)
    text = files.read_file("big.txt", root=str(tmp_path), max_bytes=100)
    assert text.startswith("x" * 100 + "\n[… truncated: big.txt has 5000 bytes, shown 100")


def test_edit_file_needs_exactly_one_match(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text("a = 1\nb = 1\n")
    with pytest.raises(ValueError, match="occurs 2 times"):
        files.edit_file("f.py", "= 1", "= 2", root=str(tmp_path))
    with pytest.raises(ValueError, match="not found"):
        files.edit_file("f.py", "c = 1", "c = 2", root=str(tmp_path))
    assert files.edit_file("f.py", "b = 1", "b = 2", root=str(tmp_path)) == "edited f.py"
    assert (tmp_path / "f.py").read_text() == "a = 1\nb = 2\n"


def test_list_dir_marks_directories_links_and_executables(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)
    (tmp_path / "link").symlink_to("sub")
    assert files.list_dir(root=str(tmp_path)).splitlines() == ["link -> sub", "run.sh*  (10 bytes)", "sub/"]
    assert files.list_dir("sub", root=str(tmp_path)) == "(empty directory)"


def test_list_dir_caps_entries(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_text("")
    assert files.list_dir(root=str(tmp_path), max_entries=2).splitlines()[-1] == "[… 3 more entries]"


@pytest.mark.parametrize("path", ["../outside", "a/../../outside", "/etc/passwd", "~/x"])
def test_paths_leaving_the_root_are_refused(tmp_path: Path, path: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(files.OutsideRootError):
        files.write_file(path, "x", root=str(root))
    assert not (tmp_path / "outside").exists()


def test_symlinks_out_of_the_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret").write_text("s3cret")
    (root / "out").symlink_to(tmp_path)
    (root / "dangling").symlink_to(tmp_path / "new-file")
    with pytest.raises(files.OutsideRootError):
        files.read_file("out/secret", root=str(root))
    with pytest.raises(files.OutsideRootError):
        files.write_file("dangling", "x", root=str(root))
    assert not (tmp_path / "new-file").exists()


def test_symlinks_inside_the_root_are_followed(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("hi")
    (tmp_path / "alias.txt").symlink_to("real.txt")
    assert files.read_file("alias.txt", root=str(tmp_path)) == "hi"


# -- shell -----------------------------------------------------------------------------


def test_run_command_reports_exit_code_and_streams(tmp_path: Path) -> None:
    result = shell.run_command("echo out; echo err >&2; exit 3", cwd=str(tmp_path))
    assert result == {"exit_code": 3, "stdout": "out\n", "stderr": "err\n", "timed_out": False}


def test_run_command_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-leak")
    result = shell.run_command('echo "[$OPENAI_API_KEY]"; echo "$HOME"; env', cwd=str(tmp_path))
    assert "sk-must-not-leak" not in result["stdout"]
    lines = result["stdout"].splitlines()
    assert lines[0] == "[]"
    assert lines[1] != os.path.expanduser("~")
    assert not Path(lines[1]).exists()  # the private home is removed after the call


def test_run_command_time_out_kills_the_group(tmp_path: Path) -> None:
    result = shell.run_command("sleep 100 & sleep 100", cwd=str(tmp_path), timeout=0.3)
    assert result["timed_out"] is True
    assert result["exit_code"] is None


def test_background_processes_do_not_hold_the_call(tmp_path: Path) -> None:
    result = shell.run_command("(sleep 100 &); echo started", cwd=str(tmp_path), timeout=30)
    assert result["timed_out"] is False
    assert result["stdout"] == "started\n"


def test_output_flood_keeps_head_and_tail(tmp_path: Path) -> None:
    result = shell.run_command("seq 1 200000", cwd=str(tmp_path), max_output=2000)
    out = result["stdout"]
    assert out.startswith("1\n2\n3\n")
    assert out.endswith("199999\n200000\n")
    assert "[… truncated " in out
    assert len(out) < 2100


def test_input_reaches_the_command_byte_for_byte(tmp_path: Path) -> None:
    binary = bytes(range(256)) * 4
    result = shell.run_command("wc -c; echo done", cwd=str(tmp_path), input=binary)
    assert result == {"exit_code": 0, "stdout": "1024\ndone\n", "stderr": "", "timed_out": False}
    assert shell.run_command("cat > got.bin", cwd=str(tmp_path), input=binary)["exit_code"] == 0
    assert (tmp_path / "got.bin").read_bytes() == binary


def test_input_larger_than_a_pipe_while_the_command_floods_its_output(tmp_path: Path) -> None:
    """Writing all the input before reading any output would deadlock: the command writes before it reads."""
    data = b"x" * (4 << 20)
    result = shell.run_command("seq 1 200000; wc -c", cwd=str(tmp_path), input=data, max_output=2000, timeout=60)
    assert result["timed_out"] is False
    assert result["stdout"].endswith(f"200000\n{len(data)}\n")


def test_input_a_command_never_reads_holds_nothing_up(tmp_path: Path) -> None:
    unread = shell.run_command("echo ignored", cwd=str(tmp_path), input=b"y" * (4 << 20), timeout=30)
    assert unread == {"exit_code": 0, "stdout": "ignored\n", "stderr": "", "timed_out": False}
    waiting = shell.run_command("sleep 100", cwd=str(tmp_path), input=b"z" * (4 << 20), timeout=0.3)
    assert waiting["timed_out"] is True


def test_run_command_rejects_an_empty_command(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        shell.run_command("  ", cwd=str(tmp_path))
