"""`domarkx cp`: files and directories out of and into an instance's workspace, like `docker cp`.

Through the real entry point. A copy in is recorded like an exec; paths are bytes;
nothing leaves the work dir; FIFOs are refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Cli = Callable[..., Any]

DOC = """\
```workspace-config
resources:
  - type: local_shell
    name: sh
  - type: sqlite
    name: db
```

## user

> Make some files.

## assistant

```bash
mkdir -p src/deep && echo one > src/a.txt && echo two > src/deep/b.txt && ln -s a.txt src/link
```
"""


@pytest.fixture
def box(cli: Cli, tmp_path: Path) -> str:
    doc = tmp_path / "cp.md"
    doc.write_text(DOC)
    result = cli("run", str(doc), "--name", "box", "-q")
    assert result.code == 0, result
    return "box"


def events(cli: Cli, ref: str, kind: str = "cp") -> list[dict[str, Any]]:
    """The instance's ``cp`` (or ``exec``) events, from ``log --json``."""
    return [e for e in json.loads(cli("log", ref, "--json").out) if e["role"] == kind]


def sh(cli: Cli, ref: str, command: str) -> str:
    result = cli("exec", ref, "-q", "--", command)
    assert result.code == 0, result
    return str(result.out)


# -- out ------------------------------------------------------------------------------------------


def test_a_file_out_to_a_path_or_into_a_directory(cli: Cli, box: str, tmp_path: Path) -> None:
    target = tmp_path / "copy.txt"
    assert cli("cp", f"{box}:src/a.txt", str(target)).code == 0
    assert target.read_text() == "one\n"

    into = tmp_path / "here"
    into.mkdir()
    result = cli("cp", f"{box}:src/a.txt", str(into))
    assert result.code == 0
    assert (into / "a.txt").read_text() == "one\n"
    assert result.err == f"· copied sh:src/a.txt → {into}\n"
    assert events(cli, box) == [] == events(cli, box, "exec")  # copying out changes nothing and records nothing


def test_a_directory_out_keeps_links_as_links(cli: Cli, box: str, tmp_path: Path) -> None:
    assert cli("cp", f"{box}:src", str(tmp_path / "out")).code == 0

    assert (tmp_path / "out" / "deep" / "b.txt").read_text() == "two\n"
    assert os.readlink(tmp_path / "out" / "link") == "a.txt"


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "src/../../x", "escape/passwd"])
def test_paths_that_leave_the_work_dir_are_refused(cli: Cli, box: str, tmp_path: Path, path: str) -> None:
    sh(cli, box, "ln -s /etc escape")

    result = cli("cp", f"{box}:{path}", str(tmp_path / "stolen"))

    assert result.code == 2, result
    assert len(result.err.splitlines()) <= 2 and result.err.startswith("error: ")
    assert not (tmp_path / "stolen").exists()


def test_a_fifo_in_the_workspace_is_refused_not_waited_on(cli: Cli, box: str, tmp_path: Path) -> None:
    sh(cli, box, "mkfifo src/pipe")

    alone = cli("cp", f"{box}:src/pipe", str(tmp_path / "pipe"))
    inside = cli("cp", f"{box}:src", str(tmp_path / "tree"))

    for result in (alone, inside):
        assert result.code == 2, result
        assert "not a regular file, directory or symlink" in result.err.splitlines()[0]
    assert not (tmp_path / "pipe").exists()


def test_a_name_that_is_not_utf8_survives_both_ways(cli: Cli, box: str, tmp_path: Path) -> None:
    name = b"caf\xe9 \x01.txt"
    sh(cli, box, "printf 'latin' > \"$(printf 'caf\\351 \\001.txt')\"")

    out = tmp_path / "out"
    out.mkdir()
    assert cli("cp", f"{box}:{os.fsdecode(name)}", str(out)).code == 0
    assert (os.fsencode(out) + b"/" + name) in [os.fsencode(out / n) for n in os.listdir(out)]
    assert Path(os.fsdecode(os.fsencode(out) + b"/" + name)).read_text() == "latin"

    back = tmp_path / os.fsdecode(b"back\xff.txt")
    back.write_text("returned")
    assert cli("cp", str(back), f"{box}:").code == 0
    assert sh(cli, box, "cat back$(printf '\\377').txt") == "returned"
    assert events(cli, box)[-1]["detail"]["source"].endswith("back\\xff.txt")


# -- in --------------------------------------------------------------------------------------------


def test_a_copy_in_is_committed_and_recorded(cli: Cli, box: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x.csv").write_text("1,2\n")

    result = cli("cp", str(data), f"{box}:inputs", "--json")

    assert result.code == 0, result
    report = json.loads(result.out)
    assert (report["direction"], report["resource"], report["path"]) == ("in", "sh", "inputs")
    assert sh(cli, box, "cat inputs/sub/x.csv") == "1,2\n"
    (event,) = events(cli, box)
    assert (event["role"], event["after"], event["workspace_version"]) == ("cp", 1, report["workspace_version"])
    fork = cli("fork", box, "--at", "1", "--name", "heir", "-q")
    assert fork.code == 0
    assert sh(cli, "heir", "cat inputs/sub/x.csv") == "1,2\n"  # the fork starts from the copy


def test_a_copy_in_cannot_leave_the_work_dir_or_take_a_fifo(cli: Cli, box: str, tmp_path: Path) -> None:
    ok = tmp_path / "ok.txt"
    ok.write_text("x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    for args in ([str(ok), f"{box}:../outside.txt"], [str(fifo), f"{box}:"], [str(tmp_path / "none"), f"{box}:"]):
        result = cli("cp", *args)
        assert result.code == 2, (args, result)
        assert result.err.startswith("error: ")
    assert events(cli, box) == []


# -- which resource, and what cannot be copied -----------------------------------------------------


def test_a_resource_without_files_and_arguments_that_name_no_instance(cli: Cli, box: str, tmp_path: Path) -> None:
    no_files = cli("cp", "--resource", "db", f"{box}:x", str(tmp_path))
    assert no_files.code == 2
    assert no_files.err.splitlines()[0] == "error: sqlite resources have no files to copy"

    for args in (["a", "b"], [f"{box}:a", f"{box}:b"]):
        both = cli("cp", *args)
        assert both.code == 2
        assert both.err.startswith("error: one of SRC and DEST must be INSTANCE:PATH")
    local = cli("cp", f"./{box}:a", str(tmp_path))  # a colon after a slash: a path on this machine
    assert local.code == 2 and "one of SRC and DEST" in local.err
