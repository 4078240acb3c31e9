"""Helpers the built-in plugins share: validating config, keeping state on disk.

Plugins are stateless between calls, so each resource's state is a small JSON
file in its directory, replaced atomically and durably so neither a crash nor a
power cut leaves half of it.

pydantic is imported only where a model is validated: a plugin whose models
live in a module of their own (:class:`LazyModel`) loads without it, so reading
its versions (``domarkx diff``) starts faster.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from domarkx.data.store import fsync_dir
from domarkx.errors import DomarkxError, UsageError

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")

STATE_FILE = "state.json"


def parse_config(model: type[M], config: dict[str, Any], plugin_type: str) -> M:
    """Validate a resource's ``workspace-config`` options; a typo is a usage error naming the key."""
    from pydantic import ValidationError

    try:
        return model.model_validate(config)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "config"
            message = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{where}: {message}")
        known = ", ".join(model.model_fields)
        raise UsageError(
            f"invalid {plugin_type} config: {'; '.join(problems)}", hint=f"{plugin_type} options: {known}"
        ) from exc


def read_state(directory: Path, model: type[M]) -> M:
    from pydantic import ValidationError

    path = directory / STATE_FILE
    try:
        return model.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise UsageError(f"no resource state in {directory}", hint="the resource was destroyed") from exc
    except (OSError, ValidationError) as exc:
        raise DomarkxError(f"resource state {path} is unreadable: {exc}") from exc


def write_state(directory: Path, state: BaseModel) -> None:
    """Replace the state file durably: written, flushed to disk, renamed, and the rename flushed too.

    After a power cut the file is the old state or the new one, never empty or
    half written, and a version recorded in the store is never newer than the
    state that names it (docs/store.md, "Durability").
    """
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".state.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(state.model_dump_json(indent=1))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, directory / STATE_FILE)
        fsync_dir(directory)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LazyModel:
    """A plugin's ``config_model`` named by ``"module:Class"`` and imported when first read.

    ``Plugin.config_model`` is a class attribute; a plugin that keeps its
    pydantic models in a module of their own sets it to this, so loading the
    plugin class (as ``domarkx diff`` does) imports neither that module nor pydantic.
    """

    def __init__(self, target: str) -> None:
        self.target = target

    def __get__(self, obj: object, owner: type | None = None) -> type[BaseModel]:
        module, _, name = self.target.partition(":")
        found: type[BaseModel] = getattr(importlib.import_module(module), name)
        return found
