"""The part of domarkx that runs inside a kernel (confined, and as hostile as the document).

Only the kernel process imports it; it imports nothing else from domarkx.
What it hands back is data — JSON, and pickles written to the outbox — that
domarkx re-hashes and stores but never loads: pickles are only ever loaded
here, in a kernel.

**What changed since the last version** is found the way Kishu does it, without
pickling the namespace after every cell:

* the user namespace is a :class:`Namespace`, a dict that records the names
  read from it — by a cell's own code and by the functions it calls (their
  globals are this dict, and CPython looks globals up through ``__getitem__``
  when the globals dict is not an exact ``dict``);
* the names whose binding changed (assigned, deleted, ``global`` stores) are
  found by comparing the namespace's object ids before and after the cell;
* a name read may have been mutated (``items.append(…)``), so read and written
  names both count as *touched*.

Variables are stored in *groups* (Kishu's co-variables): names whose values
reach a common mutable object are pickled together, so ``a is b`` and
``x[0] is y`` survive a restore. A group none of whose names was touched since
the last version is kept as it was, unpickled; the others are grouped again by
reachability and pickled; one whose pickle did not change is kept too. A group
that cannot be pickled (a socket, a generator) is reported, and restored by
re-running the cells it depends on (see :func:`recompute`).
"""

from __future__ import annotations

import builtins
import gc
import hashlib
import io
import json
import os
import re
import reprlib
import sys
import types
from typing import Any

_IPYTHON_NAMES = re.compile(r"_+|_i+|_i?\d+|_[iod]h|In|Out|get_ipython|exit|quit")
_ATOMIC = frozenset({int, float, complex, bool, str, bytes, type(None), range, types.CodeType})
"""Immutable leaves: two variables sharing one is invisible, so they never join groups."""
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR_MAX = 200


class Namespace(dict):  # type: ignore[type-arg]
    """The kernel's user namespace, remembering which names were read since :meth:`forget`."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def __getitem__(self, key: Any) -> Any:
        self.read.add(key)
        return dict.__getitem__(self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.read.add(key)
        return dict.get(self, key, default)


class Agent:
    """Tracks the cells run since the base version and saves or restores the namespace."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.ns: Namespace = shell.user_ns
        self.hidden = set(shell.user_ns_hidden)
        self.base: dict[tuple[str, ...], str] = {}
        """Groups of the base version (the last committed or loaded) → blob digest ("" when recomputed)."""
        self.touched: set[str] = set()
        self.cells: list[dict[str, Any]] = []
        self._before: dict[str, int] = {}

    def is_user(self, name: Any) -> bool:
        return (
            isinstance(name, str)
            and not name.startswith("__")
            and name not in self.hidden
            and not _IPYTHON_NAMES.fullmatch(name)
        )

    def _ids(self) -> dict[str, int]:
        return {k: id(v) for k, v in dict.items(self.ns) if self.is_user(k)}

    def pre_run_cell(self, info: Any) -> None:
        self.ns.read.clear()
        self._before = self._ids()

    def post_run_cell(self, result: Any) -> None:
        after = self._ids()
        writes = {k for k in after.keys() | self._before.keys() if after.get(k) != self._before.get(k)}
        reads = {k for k in self.ns.read if k in after or k in self._before}
        self.touched |= writes | reads
        error = result.error_in_exec or result.error_before_exec
        self.cells.append(
            {
                "code": result.info.raw_cell if result.info is not None else "",
                "ok": error is None,
                "interrupted": isinstance(error, KeyboardInterrupt),
                "reads": sorted(reads),
                "writes": sorted(writes),
            }
        )

    # -- saving ----------------------------------------------------------------------

    def names(self) -> set[str]:
        return {k for k in dict.keys(self.ns) if self.is_user(k)}

    def checkpoint(self, outbox: str) -> dict[str, Any]:
        """Pickle the groups that may have changed into ``outbox``; describe the rest as kept."""
        import cloudpickle  # noqa: F401 - missing, it fails the checkpoint rather than every group

        names = self.names()
        kept = {g: d for g, d in self.base.items() if set(g) <= names and not self.touched & set(g)}
        loose = names.difference(*map(set, kept))
        pieces: list[dict[str, Any]] = []
        for group in groups(self.ns, sorted(loose)):
            piece = self._save(group, outbox)
            if piece is None:
                kept[group] = self.base[group]
            else:
                pieces.append(piece)
        return {"kept": [[list(g), d] for g, d in sorted(kept.items())], "pieces": pieces, "cells": self.cells}

    def _save(self, group: tuple[str, ...], outbox: str) -> dict[str, Any] | None:
        """Pickle one group into the outbox; ``None`` when it pickles to the base's bytes."""
        values = {name: dict.__getitem__(self.ns, name) for name in group}
        described = {name: describe(value) for name, value in values.items()}
        try:
            data = dumps(values, self.ns)
        except Exception as exc:  # whatever a user's __reduce__ raises: recompute instead
            return {"names": list(group), "error": f"{type(exc).__name__}: {exc}"[:300], "vars": described}
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.base.get(group) == digest:
            return None
        name = digest.removeprefix("sha256:")
        with open(os.path.join(outbox, name), "wb") as fh:
            fh.write(data)
        return {"names": list(group), "file": name, "size": len(data), "vars": described}

    def committed(self, pieces: list[list[Any]]) -> None:
        """domarkx stored a version of these groups: they are the new base."""
        self.base = {tuple(names): digest for names, digest in pieces}
        self.touched.clear()
        self.cells.clear()

    # -- restoring -------------------------------------------------------------------

    def restore(self, inbox: str, pieces: list[list[Any]]) -> dict[str, Any]:
        """Load the pickled groups (``[names, file, digest]``) from ``inbox``; the others are recomputed next."""
        loaded = 0
        for names, filename, _digest in pieces:
            with open(os.path.join(inbox, filename), "rb") as fh:
                values = load(fh)
            if not isinstance(values, dict) or sorted(values) != sorted(names):
                raise ValueError(f"piece {filename} does not hold {names}")
            dict.update(self.ns, values)
            loaded += len(values)
        self.committed([[names, digest] for names, _file, digest in pieces])
        return {"loaded": loaded}

    def recompute(self, cells: list[str], names: list[str], digest: str) -> dict[str, Any]:
        """Run ``cells`` in a scratch namespace and take only ``names`` from it.

        The scratch namespace keeps the cells' other assignments from
        overwriting restored variables. Returns the names found and the
        failures met, one line each.
        """
        scratch: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins, "get_ipython": _shell}
        problems = []
        for number, code in enumerate(cells, start=1):
            try:
                source = self.shell.transform_cell(code)
                exec(compile(source, f"<recomputed cell {number}>", "exec"), scratch)  # noqa: S102 - the user's own cell
            except Exception as exc:  # the cell's own failure: report it, go on
                problems.append(f"cell {number} raised {type(exc).__name__}: {exc}"[:300])
        found = [name for name in names if name in scratch]
        for name in found:
            dict.__setitem__(self.ns, name, scratch[name])
        self.base[tuple(names)] = digest
        return {"found": found, "problems": problems}


def groups(ns: dict[str, Any], names: list[str]) -> list[tuple[str, ...]]:
    """Split ``names`` into groups whose values share no mutable object (union-find over reachable ids)."""
    parent = {name: name for name in names}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    owner: dict[int, str] = {}
    for name in names:
        for oid in reachable(dict.__getitem__(ns, name), ns):
            other = owner.setdefault(oid, name)
            if other != name:
                parent[find(name)] = find(other)
    found: dict[str, list[str]] = {}
    for name in names:
        found.setdefault(find(name), []).append(name)
    return sorted(tuple(sorted(g)) for g in found.values())


def reachable(value: Any, ns: dict[str, Any]) -> set[int]:
    """Ids of the mutable objects ``value`` reaches that a pickle of it would copy.

    Traversal stops at what pickles by reference or not at all: modules, the
    namespace itself (functions' globals), importable classes and functions,
    builtins.
    """
    seen: set[int] = set()
    stack = [value]
    builtin_dict = builtins.__dict__
    while stack:
        obj = stack.pop()
        kind = type(obj)
        if kind in _ATOMIC or id(obj) in seen or obj is ns or obj is builtin_dict:
            continue
        if isinstance(obj, types.ModuleType | types.BuiltinFunctionType) or _importable(obj):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return seen


def _importable(obj: Any) -> bool:
    """A class or function defined in a module (pickled by name, shared by everyone)."""
    if isinstance(obj, type | types.FunctionType):
        return getattr(obj, "__module__", "__main__") not in ("__main__", None)
    return False


def describe(value: Any) -> dict[str, str]:
    """Type and a short repr, computed here so domarkx never needs the object to show it."""
    kind = type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    try:
        text = _REPR.repr(value)
    except Exception as exc:  # a user's __repr__ may fail like any code
        text = f"<repr failed: {type(exc).__name__}>"
    return {"type": name[:100], "repr": text[:_REPR_MAX]}


# -- pickling: functions of the namespace stay bound to the namespace ---------------


def _shell() -> Any:
    from IPython import get_ipython

    return get_ipython()


def _namespace() -> dict[str, Any]:
    """The user namespace of the kernel loading a pickle (what the pickled one stood for)."""
    ns: dict[str, Any] = _shell().user_ns
    return ns


def _make_function(code: types.CodeType, name: str, free: int) -> types.FunctionType:
    cells = tuple(types.CellType() for _ in range(free)) if free else None
    return types.FunctionType(code, _namespace(), name, None, cells)


def _set_function_state(func: types.FunctionType, state: dict[str, Any]) -> None:
    for cell, (full, value) in zip(func.__closure__ or (), state.pop("cells"), strict=True):
        if full:
            cell.cell_contents = value
    func.__dict__.update(state.pop("__dict__"))
    for attr, value in state.items():
        setattr(func, attr, value)


def _function_state(func: types.FunctionType) -> dict[str, Any]:
    cells = []
    for cell in func.__closure__ or ():
        try:
            cells.append((True, cell.cell_contents))
        except ValueError:  # an empty cell (a name assigned later in the enclosing function)
            cells.append((False, None))
    attrs = ("__defaults__", "__kwdefaults__", "__qualname__", "__doc__", "__module__", "__annotations__")
    return {"cells": cells, "__dict__": dict(func.__dict__), **{a: getattr(func, a) for a in attrs}}


def dumps(value: Any, ns: dict[str, Any]) -> bytes:
    """Pickle ``value``; functions whose globals are ``ns`` load with the loading kernel's namespace as globals.

    cloudpickle alone would give each such function a private copy of the
    globals it uses, so after a restore it would no longer see the variables
    the user changes.
    """
    import cloudpickle

    class Pickler(cloudpickle.Pickler):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            if obj is ns:
                return _namespace, ()
            if type(obj) is types.FunctionType and obj.__globals__ is ns:
                free = len(obj.__code__.co_freevars)
                return (
                    _make_function,
                    (obj.__code__, obj.__name__, free),
                    _function_state(obj),
                    None,
                    None,
                    _set_function_state,
                )
            return super().reducer_override(obj)

    buffer = io.BytesIO()
    Pickler(buffer, protocol=5).dump(value)
    return buffer.getvalue()


def load(fh: Any) -> Any:
    import pickle

    return pickle.load(fh)  # noqa: S301 - inside the kernel, the only place a pickle is ever loaded


# -- the kernel side of the protocol ------------------------------------------------

_AGENT: Agent | None = None


def call(method: str, arguments: str) -> None:
    """Run one agent method (a silent cell sent by domarkx) and display its JSON result."""
    from IPython.display import display

    assert _AGENT is not None
    value = getattr(_AGENT, method)(**json.loads(arguments))
    display({"application/vnd.domarkx.result+json": {"value": value}}, raw=True)  # type: ignore[no-untyped-call]


def main() -> None:
    """Start ipykernel (arguments as for ``ipykernel_launcher``) with a tracked user namespace."""
    from ipykernel.kernelapp import IPKernelApp

    global _AGENT
    # ipykernel_launcher removes the script's directory from sys.path; `-c` put the cwd there.
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    app = IPKernelApp.instance(user_ns=Namespace())
    app.initialize(sys.argv[1:])  # type: ignore[no-untyped-call]
    shell = app.shell
    assert shell is not None
    _AGENT = Agent(shell)
    shell.events.register("pre_run_cell", _AGENT.pre_run_cell)
    shell.events.register("post_run_cell", _AGENT.post_run_cell)
    app.start()  # type: ignore[no-untyped-call]
