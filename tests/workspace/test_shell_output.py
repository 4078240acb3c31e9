"""A command's output reaches whoever watches as it is produced, while the result stays capped."""

from __future__ import annotations

from pathlib import Path

from domarkx.data.store import Store
from domarkx.tools.portable import shell
from domarkx.workspace.plugin import PluginContext, streaming_to
from domarkx.workspace.plugins.local_shell import LocalShellPlugin


def test_on_output_sees_everything_the_capped_result_drops(tmp_path: Path) -> None:
    seen: list[str] = []
    result = shell.run_command("seq 1 20000; echo oops >&2", cwd=str(tmp_path), max_output=2000, on_output=seen.append)
    watched = "".join(seen)
    assert watched.count("\n") == 20001
    assert "10000\n" in watched and "oops\n" in watched
    assert "truncated" in result["stdout"] and "10000\n" not in result["stdout"]


def test_a_character_split_between_two_reads_arrives_whole(tmp_path: Path) -> None:
    seen: list[str] = []
    # é is two bytes; the first is flushed alone, the second after a pause
    shell.run_command(r"printf '\303'; sleep 0.2; printf '\251 ok'", cwd=str(tmp_path), on_output=seen.append)
    assert "".join(seen) == "é ok"
    assert "\ufffd" not in "".join(seen)


def test_text_that_is_not_utf8_is_shown_replaced(tmp_path: Path) -> None:
    seen: list[str] = []
    shell.run_command(r"printf 'caf\351\n'", cwd=str(tmp_path), on_output=seen.append)
    assert "".join(seen) == "caf\ufffd\n"


def test_local_shell_commands_stream_to_the_listener(tmp_path: Path) -> None:
    with Store(tmp_path / "home") as store:
        plugin = LocalShellPlugin(PluginContext(home=store.home, store=store))
        resource = plugin.create_resource({})
        seen: list[str] = []
        with streaming_to(seen.append):
            result = plugin.execute_tool(resource.id, "run_command", command="echo one; echo two >&2")
        plugin.execute_tool(resource.id, "run_command", command="echo nobody listens")  # and nothing breaks
        assert sorted("".join(seen).split()) == ["one", "two"]
        assert result["stdout"] == "one\n"
