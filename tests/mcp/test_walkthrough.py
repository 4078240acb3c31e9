"""docs/mcp.md's walkthrough, as written: the agent changes files through the shell, a rewind brings all back."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
from mcphelp import call, stdio, tree, work_dir

DOCS = Path(__file__).resolve().parents[2] / "docs" / "mcp.md"
SETUP = (
    "mkdir -p app/tests && printf 'def f():\\n    return 1\\n' > app/core.py"
    " && echo 'from app.core import f' > app/tests/t.py"
)
BREAK = "sed -i 's/return 1/return 2/' app/core.py && rm -rf app/tests && touch app/new.py"


def test_the_walkthrough_brings_everything_back(cli, tmp_path: Path, domarkx_home: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "task.md"
    doc.write_text("## user\n\n> Build the app.\n")
    assert cli("run", str(doc), "--name", "proj", "-q").code == 0
    assert SETUP in DOCS.read_text() and BREAK in DOCS.read_text()

    async def agent() -> tuple[str, str, str]:
        with (tmp_path / "server.log").open("w") as sink:
            async with stdio("proj", domarkx_home, sink) as client:
                await call(client, "run_command", command=SETUP)
                point, _ = await call(client, "checkpoint", note="f returns 1")
                await call(client, "run_command", command=BREAK)
                await call(client, "run_command", command="cat app/core.py")
                changes, _ = await call(client, "diff", **{"from": 4})
                rewound, _ = await call(client, "rewind", to=4)
                return point, changes, rewound

    point, changes, rewound = anyio.run(agent)
    assert point == "checkpoint 'f returns 1' is message 4: rewind(to=4) brings the session and workspace back"
    assert "== local_shell" in changes
    assert re.fullmatch(
        r"rewound to message 4, workspace \w{12}; messages 5\.\.10 and the workspace before are kept in hidden"
        r" instance (\w{12}) \(`domarkx fork \1 --at 10` brings them back\)\n",
        rewound,
    ), rewound
    assert tree(work_dir(domarkx_home, "proj")) == {
        "app/core.py": "def f():\n    return 1\n",
        "app/tests/t.py": "from app.core import f\n",
    }
