"""Checkpoints of the python resource: what survives a restore, what is recomputed, what a hostile kernel cannot do."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domarkx.data.store import Store
from domarkx.errors import DomarkxError
from domarkx.workspace.plugin import PluginContext
from domarkx.workspace.plugins import _pycheckpoint as ckpt
from domarkx.workspace.plugins.python import PythonPlugin


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginContext]:
    home = tmp_path_factory.mktemp("python-checkpoint")
    store = Store(home)
    yield PluginContext(home=home, store=store)
    store.close()


@pytest.fixture(scope="module")
def plugin(context: PluginContext) -> PythonPlugin:
    return PythonPlugin(context)


@pytest.fixture
def resource(plugin: PythonPlugin) -> Iterator[str]:
    created = plugin.create_resource({"timeout": 30})
    yield created.id
    plugin.destroy_resource(created.id)


def run(plugin: PythonPlugin, resource_id: str, code: str) -> str:
    result = plugin.execute_tool(resource_id, "execute_python", code=code)
    assert isinstance(result, str)
    return result


def blobs(context: PluginContext) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in (context.home / "blobs").rglob("*") if p.is_file()}


def test_aliases_functions_and_classes_survive_a_restore(plugin: PythonPlugin, resource: str) -> None:
    run(
        plugin,
        resource,
        "a = [1]\nb = a\nd = {'x': a}\nn = 1\ndef f():\n    return n\n"
        "class Point:\n    def __init__(self, x): self.x = x\n    def twice(self): return 2 * self.x\np = Point(21)",
    )
    version = plugin.commit_version(resource)
    plugin.load_version(resource, version)
    out = run(plugin, resource, "n = 5\na.append(2)\n(b, d['x'] is a, f(), p.twice(), isinstance(p, Point))")
    assert out == "[result]\n([1, 2], True, 5, 42, True)"


def test_unpicklable_objects_are_recomputed_in_a_scratch_namespace_and_reported(
    plugin: PythonPlugin, resource: str
) -> None:
    run(plugin, resource, "x = 1\nimport socket\ns = socket.socket()\ng = (i * i for i in range(10))\nnext(g)")
    run(plugin, resource, "next(g)\nx = 2")
    version = plugin.commit_version(resource)
    plugin.load_version(resource, version)
    out = run(plugin, resource, "x, type(s).__name__, next(g)")
    result, note = out.split("\n[note]\n")
    assert result == "[result]\n(2, 'socket', 4)", "x kept its restored value; g is where it was"
    assert "g could not be saved (TypeError: cannot pickle 'generator' object)" in note
    assert "re-running cells 1, 2" in note
    assert "s could not be saved (TypeError: cannot pickle 'socket' object)" in note


def test_a_commit_after_a_small_change_stores_only_that_change(
    plugin: PythonPlugin, context: PluginContext, resource: str
) -> None:
    run(plugin, resource, "big = bytearray(5_000_000)\nrows = list(range(100_000))\ncounter = 0")
    plugin.commit_version(resource)
    before = blobs(context)
    run(plugin, resource, "counter += 1")
    plugin.commit_version(resource)
    new = {path: size for path, size in blobs(context).items() if path not in before}
    assert len(new) == 3  # the counter's pickle, the history (one cell) and the manifest
    assert sum(new.values()) < 10_000


def test_a_cell_that_only_reads_a_large_variable_stores_nothing_new_for_it(
    plugin: PythonPlugin, context: PluginContext, resource: str
) -> None:
    run(plugin, resource, "big = bytearray(5_000_000)")
    plugin.commit_version(resource)
    before = blobs(context)
    run(plugin, resource, "size = len(big)")
    plugin.commit_version(resource)
    new = [size for path, size in blobs(context).items() if path not in before]
    assert sum(new) < 10_000


def test_the_kernels_pickles_are_never_loaded_by_domarkx(
    plugin: PythonPlugin, context: PluginContext, resource: str, tmp_path: Path
) -> None:
    """A kernel that replaces its pickler with one planting a payload: domarkx stores bytes, loads nothing."""
    planted = tmp_path / "pwned"
    evil = (
        "import domarkx.tools._kernel_agent as agent, pickle, os\n"
        "class Payload:\n"
        f"    def __reduce__(self): return (os.system, ('touch {planted}',))\n"
        "agent.dumps = lambda value, ns: pickle.dumps(Payload())\n"
        "victim = [1]"
    )
    run(plugin, resource, evil)
    loaded: list[Any] = []

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "pickle.find_class":
            loaded.append(args)

    sys.addaudithook(audit)  # hooks cannot be removed; this one only records
    version = plugin.commit_version(resource)
    plugin.diff_versions(version, version)
    assert loaded == []
    assert not planted.exists()
    pieces = ckpt.read_manifest(context.store, version)
    assert isinstance(pieces, ckpt.Manifest)
    assert any(b"system" in context.store.get_blob(p.blob) for p in pieces.pieces if p.blob)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("{'kept': [[['a'], 'sha256:' + '0' * 64]], 'pieces': [], 'cells': []}", "parent version does not have"),
        ("{'kept': [], 'pieces': [{'names': ['a'], 'file': '../../state.json', 'vars': {}}], 'cells': []}", "outside"),
        ("{'kept': [], 'pieces': [{'names': ['a'], 'file': 'f' * 64, 'vars': {}}], 'cells': []}", "not a regular"),
        ("{'kept': [], 'pieces': 'x', 'cells': []}", "malformed"),
    ],
    ids=["foreign blob", "path escape", "fifo", "garbage"],
)
def test_a_lying_kernel_cannot_make_a_version(
    plugin: PythonPlugin, context: PluginContext, resource: str, answer: str, message: str
) -> None:
    run(plugin, resource, "a = 1")
    kernel = plugin.kernel(resource)
    os.mkfifo(kernel.outbox / ("f" * 64))
    run(
        plugin,
        resource,
        f"import domarkx.tools._kernel_agent as agent\nagent._AGENT.checkpoint = lambda outbox: {answer}",
    )
    version = plugin.get_version(resource)
    with pytest.raises(DomarkxError, match=message):
        plugin.commit_version(resource)
    assert plugin.get_version(resource) == version


def test_the_cells_a_recomputation_needs() -> None:
    def cell(reads: list[str], writes: list[str], interrupted: bool = False) -> ckpt.Cell:
        return ckpt.Cell(code="", ok=True, reads=reads, writes=writes, interrupted=interrupted)

    history = [
        cell([], ["socket"]),  # 0 import socket
        cell([], ["n"]),  # 1 unrelated
        cell(["socket"], ["s"]),  # 2 s = socket.socket()
        cell(["s"], []),  # 3 s.connect(…): a read may mutate
        cell(["s"], ["t"], interrupted=True),  # 4 cut off: never repeated
        cell(["n"], ["n"]),  # 5 unrelated
    ]
    assert ckpt.cells_for(history, ["s"]) == [0, 2, 3]
    assert ckpt.cells_for(history, ["n"]) == [1, 5]
    assert ckpt.cells_for(history, ["missing"]) == []


def test_reprs_from_the_kernel_are_made_safe_to_show() -> None:
    assert ckpt.clean("<object at 0x7f00ff>\x1b[31m\n") == "<object>?[31m\n"


def test_versions_can_be_browsed_and_diffed_without_loading(plugin: PythonPlugin, resource: str) -> None:
    run(plugin, resource, "import os\nos.makedirs('d/empty')\nopen(b'd/caf\\xe9.txt', 'w').write('one\\n')\nx = [1]")
    first = plugin.commit_version(resource)
    run(plugin, resource, "open(b'd/caf\\xe9.txt', 'w').write('two\\n')\nx.append(2)\ny = 'new'")
    second = plugin.commit_version(resource)
    assert [(e.name, e.kind) for e in plugin.list_version(first, b"d")] == [(b"caf\xe9.txt", "file"), (b"empty", "dir")]
    assert plugin.read_version(first, b"d/caf\xe9.txt") == b"one\n"
    diff = plugin.diff_versions(first, second)
    shown = {(c.kind, c.name, c.status): c.detail for c in diff.changes}
    assert (
        shown[("variable", "x", "modified")].startswith("[1] (list, ")
        and "[1, 2] (list, " in shown[("variable", "x", "modified")]
    )
    assert ("variable", "y", "added") in shown
    assert any(kind == "file" and status == "modified" for kind, _, status in shown)


_STEP = """
import json, os, sys
from pathlib import Path
from domarkx.data.store import Store
from domarkx.workspace.plugin import PluginContext
from domarkx.workspace.plugins.python import PythonPlugin

home = Path(sys.argv[1])
plugin = PythonPlugin(PluginContext(home=home, store=Store(home)))
run = lambda rid, code: plugin.execute_tool(rid, "execute_python", code=code)
args = json.loads(sys.argv[2])
if args["step"] == "build":
    rid = plugin.create_resource({}).id
    run(rid, "import random, time\\ndraw = random.random()\\nstamp = time.time()\\nopen('a.txt', 'w').write('a')")
    recorded = run(rid, "draw, stamp")
    first = plugin.commit_version(rid)
    run(rid, "draw = 'later'\\nopen('b.txt', 'w').write('b')")
    second = plugin.commit_version(rid)
    print(json.dumps({"rid": rid, "first": first, "second": second, "recorded": recorded}))
else:
    rid = args.get("rid") or plugin.create_resource({}).id
    if args.get("load"):
        plugin.load_version(rid, args["load"])
    look = "import os\\nget_ipython().execution_count, draw, stamp, sorted(os.listdir('.'))"
    print(json.dumps(run(rid, look)))
"""


def test_a_fork_in_a_new_process_has_the_recorded_values_and_files(tmp_path: Path) -> None:
    """Build in one process, fork in another, look at the parent in a third: nothing re-runs anywhere."""
    import json
    import subprocess

    def step(**args: Any) -> Any:
        done = subprocess.run(
            [sys.executable, "-c", _STEP, str(tmp_path), json.dumps(args)],
            capture_output=True, text=True, check=True, cwd=tmp_path,
        )  # fmt: skip
        return json.loads(done.stdout.strip().splitlines()[-1])

    built = step(step="build")
    recorded = built["recorded"].removeprefix("[result]\n(").removesuffix(")")
    fork = step(step="look", load=built["first"])
    assert fork == f"[result]\n(2, {recorded}, ['a.txt'])", "execution_count 2: the first cell of a kernel"
    parent = step(step="look", rid=built["rid"])
    assert parent.startswith("[result]\n(2, 'later', ")
    assert parent.endswith(", ['a.txt', 'b.txt'])")


def test_versions_travel_to_another_home_and_unused_ones_are_collected(
    plugin: PythonPlugin, context: PluginContext, resource: str, tmp_path: Path
) -> None:
    run(plugin, resource, "import random\ndraw = random.random()\nopen('f.txt', 'w').write('files too')")
    first = plugin.commit_version(resource)
    recorded = run(plugin, resource, "draw")
    run(plugin, resource, "later = bytearray(100_000)")
    second = plugin.commit_version(resource)
    out = tmp_path / "layers"
    out.mkdir()
    layers = plugin.export_versions([first], out)
    assert {layer.media_type for layer in layers} == {ckpt.BLOB_MEDIA, ckpt.PACK_MEDIA}
    assert plugin.export_versions([first], out / "..", have=[first]) == []
    other_home = tmp_path / "home"
    with Store(other_home) as store:
        other = PythonPlugin(PluginContext(home=other_home, store=store))
        assert other.missing_versions([first]) == {first}
        other.import_versions(layers)
        other.import_versions(layers)  # again: nothing changes
        assert other.missing_versions([first]) == set()
        fresh = other.create_resource({}).id
        other.load_version(fresh, first)
        assert run(other, fresh, "draw") == recorded
        assert run(other, fresh, "open('f.txt').read()") == "[result]\n'files too'"
        other.destroy_resource(fresh)
    plugin.collect([first])
    context.store.prune()
    assert plugin.missing_versions([first, second]) == {second}
