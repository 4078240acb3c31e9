"""Checkpoints of a ``python`` resource, on domarkx's side: what a version stores and how it comes back.

A version is a *manifest* blob (its digest is the version id) naming

* ``files``: the git commit of the kernel's work directory (the home's python
  object store, as ``local_shell`` versions files);
* ``pieces``: the user namespace in groups of variables, each a pickle blob
  written by the kernel, or — for a group that could not be pickled — the
  reason, so that load recomputes it;
* ``history``: the cells run so far (a chain of blobs, newest last), each with
  the names it read and wrote, which is what recomputation re-runs.

The kernel is as hostile as the document: domarkx takes its pickles as bytes
(re-hashed by the store, size-checked, regular files only) and never loads
them; it validates every JSON answer; a group the kernel says is unchanged
must be one of the parent version's, so a kernel cannot make a version name
blobs it never had. Pickles are loaded only by a kernel
(:mod:`domarkx.tools._kernel_agent`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domarkx import ids
from domarkx.data.store import Store
from domarkx.errors import DomarkxError, ReferenceNotFound, StoreError, UsageError
from domarkx.tools.kernel import Kernel
from domarkx.workspace.plugin import Change, Entry, Layer
from domarkx.workspace.plugins._gitstore import GitStore

_HEX = re.compile(r"[0-9a-f]{64}")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_AGENT = "__import__('domarkx.tools._kernel_agent', fromlist=['call']).call({method!r}, {arguments!r})"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variable(_Model):
    type: str = Field(max_length=100)
    repr: str = Field(max_length=200)


class Piece(_Model):
    """One group of variables: a pickle blob, or (``blob`` empty) the reason it is recomputed."""

    names: list[str] = Field(min_length=1)
    blob: str = ""
    size: int = Field(default=0, ge=0)
    error: str = Field(default="", max_length=300)
    vars: dict[str, Variable] = Field(default_factory=dict)


class Manifest(_Model):
    format: Literal["domarkx.python/2"] = "domarkx.python/2"
    files: str
    history: str = ""
    pieces: list[Piece] = Field(default_factory=list)


class Cell(_Model):
    code: str
    ok: bool
    interrupted: bool = False
    reads: list[str] = Field(default_factory=list)
    writes: list[str] = Field(default_factory=list)


class History(_Model):
    format: Literal["domarkx.python.history/1"] = "domarkx.python.history/1"
    parent: str = ""
    cells: list[Cell]


class _Capture(_Model):
    """The kernel's answer to ``checkpoint``: groups kept from the parent, new pieces, the cells run."""

    kept: list[tuple[list[str], str]]
    pieces: list[dict[str, Any]]
    cells: list[Cell]


def call(kernel: Kernel, method: str, timeout: float, **arguments: Any) -> Any:
    """Run an agent method in the kernel (a silent cell) and return its JSON answer."""
    code = _AGENT.format(method=method, arguments=json.dumps(arguments))
    out = kernel.execute(code, timeout=timeout, silent=True, limit=2000)
    if out.timed_out:
        raise DomarkxError(f"the python kernel took over {timeout:g} s to {method}")
    if out.error is not None or not out.values or not isinstance(out.values[-1], dict):
        hint = "install domarkx[python] (cloudpickle)" if "cloudpickle" in (out.error or "") else None
        raise DomarkxError(f"the python kernel could not {method}: {out.error or 'no answer'}", hint=hint)
    return out.values[-1].get("value")


def clean(text: str) -> str:
    """A kernel-made repr, safe to show: no control characters, no memory addresses (stable across runs)."""
    return _CONTROL.sub("?", _ADDRESS.sub("", text))[:200]


# -- capture -------------------------------------------------------------------------


def capture(kernel: Kernel, parent: Manifest | None, store: Store, timeout: float) -> tuple[list[Piece], list[Cell]]:
    """Ask the kernel for what changed since ``parent``; store the new pickles; return all pieces and new cells."""
    try:
        answer = _Capture.model_validate(call(kernel, "checkpoint", timeout, outbox=kernel.outbox_inside))
    except ValidationError as exc:
        raise DomarkxError(f"the python kernel gave a malformed checkpoint: {exc.errors()[0]['msg']}") from exc
    known = {tuple(p.names): p for p in (parent.pieces if parent else [])}
    pieces: list[Piece] = []
    for names, digest in answer.kept:
        old = known.get(tuple(names))
        if old is None or old.blob != digest:
            raise DomarkxError("the python kernel claimed a group the parent version does not have")
        pieces.append(old)
    try:
        for raw in answer.pieces:
            pieces.append(_receive(kernel, raw, store))
    finally:
        _empty(kernel.outbox)
    _check_disjoint(pieces)
    return sorted(pieces, key=lambda p: p.names), answer.cells


def _receive(kernel: Kernel, raw: dict[str, Any], store: Store) -> Piece:
    """One new piece from the kernel: its pickle read from the outbox (safely) and stored."""
    try:
        names = [str(n) for n in raw["names"]]
        described = {
            str(k): Variable(type=clean(str(v["type"]))[:100], repr=clean(str(v["repr"])))
            for k, v in dict(raw.get("vars", {})).items()
        }
        if "error" in raw:
            return Piece(names=names, error=clean(str(raw["error"])), vars=described)
        filename = str(raw["file"])
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise DomarkxError(f"the python kernel described a checkpoint piece badly: {exc}") from exc
    if not _HEX.fullmatch(filename):
        raise DomarkxError("the python kernel named a checkpoint file outside its outbox")
    data = read_regular(kernel.outbox / filename)
    with store.write():
        digest = store.put_blob(data)
    return Piece(names=names, blob=digest, size=len(data), vars=described)


def read_regular(path: os.PathLike[str] | str) -> bytes:
    """The bytes of a regular file the kernel wrote, never following a link nor blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise DomarkxError(f"cannot read the kernel's checkpoint file: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DomarkxError("the kernel's checkpoint file is not a regular file")
        return fh.read()


def _check_disjoint(pieces: Iterable[Piece]) -> None:
    seen: set[str] = set()
    for piece in pieces:
        if seen & set(piece.names) or len(set(piece.names)) != len(piece.names):
            raise DomarkxError("the python kernel listed a variable in two groups")
        seen |= set(piece.names)


def _empty(folder: os.PathLike[str] | str) -> None:
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)


def store_history(store: Store, parent: str, cells: list[Cell]) -> str:
    """Append ``cells`` to the history chain ending at ``parent``; the new head (or ``parent`` if none)."""
    if not cells:
        return parent
    with store.write():
        return store.put_blob(ids.canonical_json(History(parent=parent, cells=cells).model_dump()))


def blobs_of(manifest: Manifest, store: Store) -> set[str]:
    """Every blob a version needs: its pickles and its whole history chain."""
    found = {p.blob for p in manifest.pieces if p.blob}
    head = manifest.history
    while head and head not in found:
        found.add(head)
        head = read_history(store, head).parent
    return found


# -- reading -------------------------------------------------------------------------


def read_manifest(store: Store, version_id: str) -> Manifest | list[dict[str, Any]]:
    """A version: a manifest, or (made by domarkx before checkpoints) the list of cells to replay."""
    if not ids.is_digest(version_id):
        raise UsageError(f"{version_id!r} is not a python resource version", hint="versions are sha256 ids")
    try:
        value = json.loads(store.get_blob(version_id))
    except StoreError as exc:
        raise ReferenceNotFound(f"no python resource version {ids.short(version_id)} in the store") from exc
    except ValueError as exc:
        raise UsageError(f"{ids.short(version_id)} is not a python resource version") from exc
    if isinstance(value, list) and all(_is_legacy_cell(c) for c in value):
        return value
    try:
        return Manifest.model_validate(value)
    except ValidationError as exc:
        raise UsageError(f"{ids.short(version_id)} is not a python resource version") from exc


def _is_legacy_cell(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"code", "ok"} and isinstance(value["code"], str)


def read_history(store: Store, digest: str) -> History:
    try:
        return History.model_validate_json(store.get_blob(digest))
    except ValidationError as exc:
        raise StoreError(f"python history {ids.short(digest)} is damaged", hint="run `domarkx doctor`") from exc


def all_cells(store: Store, head: str) -> list[Cell]:
    """The whole history ending at ``head``, oldest first."""
    chunks: list[list[Cell]] = []
    while head:
        history = read_history(store, head)
        chunks.append(history.cells)
        head = history.parent
    return [cell for chunk in reversed(chunks) for cell in chunk]


# -- restore -------------------------------------------------------------------------


def cells_for(cells: list[Cell], names: Iterable[str]) -> list[int]:
    """Which cells to re-run, in order, to recompute ``names`` (ElasticNotebook-style lineage).

    Walking back from the end, a cell that touched (read or wrote) a needed name
    is needed, and the names it read become needed before it. Reads count as
    writes because a read may mutate (``next(g)``). Interrupted cells are left
    out: their partial effects cannot be repeated exactly.
    """
    needed = set(names)
    chosen: list[int] = []
    for index in range(len(cells) - 1, -1, -1):
        cell = cells[index]
        if cell.interrupted or not (needed & (set(cell.reads) | set(cell.writes))):
            continue
        chosen.append(index)
        needed |= set(cell.reads)
    return sorted(chosen)


def restore(kernel: Kernel, manifest: Manifest, store: Store, timeout: float) -> list[str]:
    """Load the version's pickles into ``kernel`` and recompute what could not be pickled; return notes."""
    loadable = [p for p in manifest.pieces if p.blob]
    try:
        for piece in loadable:
            _hand_in(store, piece.blob, kernel.inbox / piece.blob.removeprefix(ids.PREFIX))
        listed = [[p.names, p.blob.removeprefix(ids.PREFIX), p.blob] for p in loadable]
        call(kernel, "restore", max(timeout, 60.0), inbox=kernel.inbox_inside, pieces=listed)
    finally:
        _empty(kernel.inbox)
    recomputed = [p for p in manifest.pieces if not p.blob]
    if not recomputed:
        return []
    cells = all_cells(store, manifest.history)
    return [_recompute(kernel, piece, cells, timeout) for piece in recomputed]


def _hand_in(store: Store, digest: str, target: os.PathLike[str] | str) -> None:
    """Put a blob where the kernel reads it: a hard link when possible (the inbox is read-only inside)."""
    try:
        os.link(store.blob_path(digest), target)
    except OSError:
        shutil.copyfile(store.blob_path(digest), target)


def _recompute(kernel: Kernel, piece: Piece, cells: list[Cell], timeout: float) -> str:
    chosen = cells_for(cells, piece.names)
    names = ", ".join(piece.names)
    answer = call(
        kernel,
        "recompute",
        timeout * max(1, len(chosen)),
        cells=[cells[i].code for i in chosen],
        names=piece.names,
        digest="",
    )
    found = answer.get("found", []) if isinstance(answer, dict) else []
    problems = [clean(str(p)) for p in answer.get("problems", [])] if isinstance(answer, dict) else []
    numbers = ", ".join(str(i + 1) for i in chosen) or "none"
    note = f"{names} could not be saved ({piece.error}) and were recomputed by re-running cells {numbers}"
    missing = [n for n in piece.names if n not in found]
    if missing:
        note += f"; {', '.join(missing)} could not be recomputed"
    if problems:
        note += f" ({'; '.join(problems[:3])})"
    return note


# -- browsing ------------------------------------------------------------------------


def _git(git: GitStore, args: list[bytes], stdin: bytes | None = None) -> bytes:
    """Run git on the python object store for raw bytes (paths are not always UTF-8).

    A stand-in until :class:`GitStore` offers byte-path listing and reading.
    """
    env = {"PATH": os.environ.get("PATH", os.defpath), "GIT_DIR": str(git.git_dir), "LC_ALL": "C",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}  # fmt: skip
    done = subprocess.run(["git", *args], env=env, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise UsageError(f"not in this version: {done.stderr.decode(errors='replace').strip()[:200]}")
    return done.stdout


def list_files(git: GitStore, commit: str, path: bytes) -> list[Entry]:
    """The entries of directory ``path`` of the files commit (empty directories included)."""
    snapshot = git.read(commit)
    spec = commit.encode() + b":" + path.strip(b"/")
    prefix = path.strip(b"/") + b"/" if path.strip(b"/") else b""
    under_empty = any(os.fsencode(rel + "/").startswith(prefix) for rel in snapshot.empty_dirs) and bool(prefix)
    try:
        listing = _git(git, [b"ls-tree", b"-z", b"-l", spec])
    except UsageError:
        if not under_empty:  # a directory that holds only empty directories is not in git's tree
            raise
        listing = b""
    entries: dict[bytes, Entry] = {}
    for record in filter(None, listing.split(b"\0")):
        meta, name = record.split(b"\t", 1)
        mode, kind, oid, size = meta.split()
        if kind == b"tree":
            entries[name] = Entry(name=name, kind="dir")
        elif mode == b"120000":
            entries[name] = Entry(name=name, kind="link", target=_git(git, [b"cat-file", b"blob", oid]))
        elif kind == b"blob":
            entries[name] = Entry(name=name, kind="file", size=int(size), executable=mode == b"100755")
        else:
            entries[name] = Entry(name=name, kind="other")
    for rel in snapshot.empty_dirs:
        raw = os.fsencode(rel)
        if raw.startswith(prefix) and b"/" not in raw[len(prefix) :]:
            entries[raw[len(prefix) :]] = Entry(name=raw[len(prefix) :], kind="dir")
    return [entries[k] for k in sorted(entries)]


def read_file(git: GitStore, commit: str, path: bytes) -> bytes:
    git.read(commit)  # a usage error for what is not one of our commits
    spec = commit.encode() + b":" + path.strip(b"/")
    if _git(git, [b"cat-file", b"-t", spec]).strip() != b"blob":
        raise UsageError("not a file in this version")
    return _git(git, [b"cat-file", b"blob", spec])


def variable_changes(old: Manifest, new: Manifest) -> list[Change]:
    """Variables added, removed or changed between two versions, shown by the reprs stored with them."""

    def index(manifest: Manifest) -> dict[str, tuple[Piece, Variable | None]]:
        return {name: (p, p.vars.get(name)) for p in manifest.pieces for name in p.names}

    before, after = index(old), index(new)
    changes: list[Change] = []
    for name in sorted(before.keys() | after.keys()):
        a, b = before.get(name), after.get(name)
        if a is not None and b is not None and a[0] == b[0]:
            continue
        status: Literal["added", "removed", "modified"] = (
            "added" if a is None else "removed" if b is None else "modified"
        )
        detail = " → ".join(_shown(x) for x in (a, b) if x is not None)
        changes.append(Change(kind="variable", name=name, status=status, detail=detail))
    return changes


def _shown(entry: tuple[Piece, Variable | None]) -> str:
    piece, var = entry
    kind, text = (var.type, var.repr) if var is not None else ("?", "?")
    size = f"{piece.size} bytes" if piece.blob else "recomputed"
    return f"{text} ({kind}, {size})"


# -- moving versions between homes -----------------------------------------------------

BLOB_MEDIA = "application/vnd.domarkx.python.blob"
PACK_MEDIA = "application/vnd.domarkx.python.git-pack"


def needed(store: Store, version_ids: Iterable[str]) -> tuple[set[str], set[str]]:
    """The blobs (manifests included) and files commits these versions need."""
    blobs: set[str] = set()
    commits: set[str] = set()
    for version in version_ids:
        manifest = read_manifest(store, version)
        blobs.add(version)
        if isinstance(manifest, Manifest):
            blobs |= blobs_of(manifest, store)
            commits.add(manifest.files)
    return blobs, commits


def export(git: GitStore, store: Store, version_ids: Iterable[str], into: Path, have: Iterable[str]) -> list[Layer]:
    """One layer per blob the receiver lacks, and one git pack of the files it lacks."""
    try:
        blobs, commits = needed(store, version_ids)
        had_blobs, had_commits = needed(store, have)
    except (ReferenceNotFound, UsageError) as exc:
        raise StoreError(exc.message) from exc
    layers: list[Layer] = []
    for digest in sorted(blobs - had_blobs):
        target = into / digest.removeprefix(ids.PREFIX)
        shutil.copyfile(store.blob_path(digest), target)
        layers.append(Layer(BLOB_MEDIA, target, digest, target.stat().st_size))
    new_commits = commits - had_commits
    if new_commits:
        revs = "".join(f"{c}\n" for c in sorted(new_commits)) + "".join(f"^{c}\n" for c in sorted(had_commits))
        pack = _git(git, [b"pack-objects", b"--revs", b"--stdout", b"-q"], stdin=revs.encode())
        target = into / "files.pack"
        target.write_bytes(pack)
        layers.append(Layer(PACK_MEDIA, target, ids.digest_bytes(pack), len(pack)))
    return layers


def import_layers(git: GitStore, store: Store, layers: Iterable[Layer], owner: str) -> None:
    """Take in what :func:`export` wrote; each blob is re-hashed, the pack is checked by git."""
    for layer in layers:
        data = layer.path.read_bytes()
        if ids.digest_bytes(data) != layer.digest:
            raise StoreError(f"layer {ids.short(layer.digest)} does not hold what it claims")
        if layer.media_type == PACK_MEDIA:
            try:
                _git(git, [b"index-pack", b"--stdin", b"--fix-thin"], stdin=data)
            except UsageError as exc:
                raise StoreError(f"a python files pack is damaged: {exc.message}") from exc
        elif layer.media_type == BLOB_MEDIA:
            with store.write():
                store.put_blob(data)
                store.add_refs(owner, [layer.digest])
