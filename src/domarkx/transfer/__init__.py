"""Sessions travel like images: bundles (``save``/``load``) and OCI registries (``push``/``pull``).

One format serves both (:mod:`.artifact`): the records of the sessions
(:mod:`.records`), their documents and the plugins' layers, under an OCI image
manifest. :mod:`.export` builds it from the store, :mod:`.bundle` writes and
reads it as a tar, :mod:`.remote` moves it to and from a registry through our
client (:mod:`.registry`, credentials in :mod:`.credentials`), and
:mod:`.install` brings it into a home, all or nothing. docs/transfer.md tells
the whole story.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

from domarkx.data import transfer as rows
from domarkx.data.store import Store
from domarkx.transfer.install import Loaded
from domarkx.transfer.records import Named, Root


def resolve(store: Store, refs: Sequence[str]) -> list[Named]:
    """What each REF names (an instance or a snapshot), remembering a tag so it travels too."""
    named = []
    for ref in refs:
        kind, found = store.resolve_any(ref)
        tag = ref if kind == "snapshot" and rows.tag_target(store, ref) == found else None
        named.append(Named(Root(kind=kind, id=found), tag))  # type: ignore[arg-type]
    return named


def save(store: Store, refs: Sequence[str], out: IO[bytes]) -> list[Root]:
    """Write the sessions ``refs`` name, with every workspace version they link, as a bundle."""
    from domarkx.transfer.bundle import write_bundle
    from domarkx.transfer.export import package

    with package(store, resolve(store, refs)) as pkg:
        write_bundle(pkg, out)
        return pkg.records.roots


def load(store: Store, source: IO[bytes], *, where: str, again: str) -> Loaded:
    """Check a bundle whole, then bring its sessions into the home (nothing if it fails anywhere).

    ``again``: the command that loads it with ``--trust``, for the hint when a power is refused.
    """
    from domarkx.transfer.bundle import read_bundle
    from domarkx.transfer.install import install
    from domarkx.transfer.scratch import scratch

    with scratch(store) as tmp:
        layout = read_bundle(source, tmp, where=where)
        return install(store, layout, where=where, again=again)


__all__ = ["Loaded", "Named", "Root", "load", "resolve", "save"]
