"""Trust: what a document may ask of your machine, and which documents you allowed to ask.

Documents come from other people (docs/security.md). Whatever a document asks to
run is confined by default: shell commands in bubblewrap, Python (its setup-script
included) in a confined kernel, SQL behind an authorizer. A few settings reach past
the confinement; they are *powers*:

* a setup-script marked ``host``, which runs inside domarkx itself, with your rights;
* a resource option its plugin names in :meth:`~domarkx.workspace.plugin.Plugin.powers`
  (``sandbox: none``, a host network, a program to start…);
* a model option its provider names in :meth:`~domarkx.llm.base.Provider.powers`
  (the server your key is sent to, the variable it is read from).

A document uses a power only if you trust it: ``domarkx trust DOC`` (in the spirit
of direnv's ``allow``) or ``--trust`` on one command. Trust is keyed by :func:`key`,
the digest of the parts that can grant power (the setup block, session-config and
workspace-config), so editing a message keeps it and editing a power drops it. It
lives in your config directory (``$DOMARKX_CONFIG``, else the platform's), one
file per document, never in the store, an export or a bundle.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domarkx import ids
from domarkx.errors import DocumentError, StoreError, UsageError

if TYPE_CHECKING:
    from domarkx.data.models import SessionSnapshot, WorkspaceConfig

ENV = "DOMARKX_CONFIG"
"""A directory that replaces the platform's user config directory (tests, several profiles)."""
HOST_FLAG = "host"
"""The setup-script flag that asks to run inside domarkx: ```` ```python setup-script host ````."""
HINT = (
    "if you trust this document, allow it once with `domarkx trust {doc}` (or pass --trust to this command); "
    "see docs/security.md"
)
_HOST_POWER = "a setup-script marked host runs inside domarkx, with your rights and keys"
_granted_here = False


@dataclass(frozen=True)
class Power:
    """One thing a document asks for that needs trust, and which block asks."""

    what: str
    block: str
    """``setup``, ``session-config`` or ``workspace-config``."""
    index: int | None = None
    """The resource's position in ``workspace-config``, for its line."""


@dataclass(frozen=True)
class Record:
    """One trusted document, as ``domarkx trust --list`` shows it."""

    key: str
    source: str | None
    granted: float
    powers: list[str]


@dataclass(frozen=True)
class DocumentTrust:
    """Whether one snapshot's powers are granted, and how to refuse one that is not."""

    snapshot: SessionSnapshot
    granted: bool

    def refuse(self, power: Power) -> DocumentError:
        return refusal(self.snapshot, power)


def config_dir() -> Path:
    """``$DOMARKX_CONFIG`` if set, else the platform's per-user config directory."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("domarkx", appauthor=False))


def key(snapshot: SessionSnapshot) -> str:
    """The digest trust is keyed by: the setup block, session-config and workspace-config, as parsed."""
    setup = snapshot.setup
    workspace = snapshot.workspace_config
    return ids.digest_json(
        {
            "setup": None
            if setup is None
            else {"lang": setup.lang, "attrs": setup.attrs, "flags": sorted(setup.flags), "text": setup.text},
            "session-config": snapshot.session_config,
            "workspace-config": None if workspace is None else workspace.model_dump(mode="json", exclude_none=True),
        }
    )


def runs_on_host(snapshot: SessionSnapshot) -> bool:
    """Whether the document's setup-script asks to run inside domarkx rather than in a kernel."""
    return snapshot.setup is not None and HOST_FLAG in snapshot.setup.flags


def workspace_powers(snapshot: SessionSnapshot, config: WorkspaceConfig) -> list[Power]:
    """What the document's setup block and resources ask for that needs trust."""
    from domarkx import _entrypoints
    from domarkx.workspace.plugin import Plugin

    found = [Power(_HOST_POWER, "setup")] if runs_on_host(snapshot) else []
    block = "workspace-config" if snapshot.workspace_config is not None else "session-config"
    for index, item in enumerate(config.resources):
        plugin = _entrypoints.load(_entrypoints.PLUGINS, item.type, what="plugin")
        if isinstance(plugin, type) and issubclass(plugin, Plugin):
            found += [Power(f"{item.type}: {what}", block, index) for what in plugin.powers(item.options)]
    return found


def setup_on_host(snapshot: SessionSnapshot) -> bool:
    """Whether the setup-script runs inside domarkx: it asks to and is trusted (asked untrusted: refused)."""
    if not runs_on_host(snapshot):
        return False
    if not is_trusted(snapshot):
        raise refusal(snapshot, Power(_HOST_POWER, "setup"))
    return True


def model_powers(snapshot: SessionSnapshot) -> list[Power]:
    """What session-config ``model_options`` ask for that needs trust, for the provider ``"model"`` names."""
    from domarkx import _entrypoints
    from domarkx.llm.base import Provider

    model = snapshot.session_config.get("model")
    options = snapshot.session_config.get("model_options")
    if not isinstance(model, str) or not isinstance(options, dict) or ":" not in model:
        return []
    provider = _entrypoints.load(_entrypoints.PROVIDERS, model.partition(":")[0], what="provider")
    if not (isinstance(provider, type) and issubclass(provider, Provider)):
        return []
    return [Power(what, "session-config") for what in provider.powers(options)]


def is_trusted(snapshot: SessionSnapshot) -> bool:
    """Granted on this command (``--trust``) or by ``domarkx trust`` (a record that reads back whole)."""
    if _granted_here:
        return True
    digest = key(snapshot)
    record = _read(_record_path(digest))
    return record is not None and record.key == digest


def of(snapshot: SessionSnapshot) -> DocumentTrust:
    return DocumentTrust(snapshot, is_trusted(snapshot))


def ungranted(snapshot: SessionSnapshot, config: WorkspaceConfig) -> Power | None:
    """The first power the document's setup or resources ask for without trust, if any.

    The one check behind ``run`` (:func:`require`) and ``load``/``pull``
    (:mod:`domarkx.transfer.install`), which each say it their own way.
    """
    found = workspace_powers(snapshot, config)
    return found[0] if found and not is_trusted(snapshot) else None


def require(snapshot: SessionSnapshot, config: WorkspaceConfig) -> None:
    """Refuse, before anything is made, a document whose setup or resources need trust it does not have."""
    power = ungranted(snapshot, config)
    if power is not None:
        raise refusal(snapshot, power)


def refusal(snapshot: SessionSnapshot, power: Power) -> DocumentError:
    """The one-line error for a power the document has not been trusted with, at the block that asks."""
    doc = snapshot.source or "<document>"
    return DocumentError(
        f"{power.what}: the document has not been trusted with that",
        path=doc,
        line=line_of(snapshot, power) + 1,
        hint=HINT.format(doc=doc if snapshot.source else "DOC"),
    )


def line_of(snapshot: SessionSnapshot, power: Power) -> int:
    """The 0-based document line of the block (or resource item) that asks for ``power``."""
    from domarkx.parsing.markdown import config_lines

    if power.block == "setup" and snapshot.setup is not None:
        return snapshot.setup.start
    lines = config_lines(snapshot.document)
    if power.block == "workspace-config" and power.index is not None and power.index < len(lines.resources):
        return lines.resources[power.index]
    found = lines.session_config if power.block == "session-config" else lines.workspace_config
    return found or 0


@contextlib.contextmanager
def granted_for_this_command() -> Iterator[None]:
    """``--trust``: every document this command touches counts as trusted, until it ends."""
    global _granted_here
    before, _granted_here = _granted_here, True
    try:
        yield
    finally:
        _granted_here = before


# -- the records ---------------------------------------------------------------------------


def _trusted_dir() -> Path:
    return config_dir() / "trusted"


def _record_path(digest: str) -> Path:
    return _trusted_dir() / f"{ids.short(digest, 64)}.json"


def grant(snapshot: SessionSnapshot, powers: list[Power]) -> Record:
    """Trust ``snapshot``'s powers from now on (replacing an earlier grant of the same key)."""
    record = Record(key(snapshot), snapshot.source, time.time(), [p.what for p in powers])
    folder = _trusted_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".trust-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record.__dict__, fh, ensure_ascii=False, indent=1)
        os.replace(tmp, _record_path(record.key))
    except OSError as exc:
        raise StoreError(f"cannot record trust in {folder}: {exc.strerror or exc}", hint=f"check {ENV}") from exc
    return record


def listing() -> list[Record]:
    """Every trusted document, most recent first; unreadable records are skipped (and trust nothing)."""
    folder = _trusted_dir()
    records = [_read(path) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted((r for r in records if r is not None), key=lambda r: -r.granted)


def _read(path: Path) -> Record | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return Record(str(data["key"]), data.get("source"), float(data["granted"]), list(data["powers"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def find(prefix: str) -> Record:
    """The trusted document whose key starts with ``prefix`` (at least 4 hex characters)."""
    wanted = prefix.removeprefix(ids.PREFIX).lower()
    matches = [r for r in listing() if ids.short(r.key, 64).startswith(wanted)] if len(wanted) >= 4 else []
    if len(matches) != 1:
        what = "no trusted document" if not matches else f"{len(matches)} trusted documents"
        raise UsageError(f"{what} matches {prefix!r}", hint="see `domarkx trust --list`")
    return matches[0]


def revoke(digest: str) -> bool:
    """Forget the trust in one document; ``False`` if it was not trusted."""
    try:
        _record_path(digest).unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError(f"cannot revoke trust: {exc.strerror or exc}") from exc
    return True
