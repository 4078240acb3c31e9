"""The plugin protocol: how a resource type plugs into a workspace.

A :class:`Plugin` manages every resource of one type. It is stateless between
calls: everything about a resource lives on disk under
``context.resource_dir(resource_id)`` (or in the engine it drives), so a later
``domarkx`` process can pick the resource up again by id.

The six methods of the design (``type``, ``create_resource``, ``execute_tool``,
``get_version``, ``commit_version``, ``load_version``) are joined by the three
that a real implementation needs: ``list_tools`` (JSON schemas for the model),
``destroy_resource`` (tear-down) and ``close`` (release processes, keep state).

Everything else is optional and describes the plugin to the core, so that the
core never names a plugin's tools, folders or id prefix (docs/plugins.md):

* what it is: :attr:`Plugin.code` (the code-block languages it runs and the tool
  that runs them), :attr:`Plugin.plugin_version` (part of the build-cache key),
  :attr:`Plugin.restorable`, :attr:`Plugin.config_model` (options checked at
  import), :meth:`Plugin.powers` (options that need the user's trust);
* its live files: :meth:`Plugin.location`, :meth:`Plugin.copy_out`,
  :meth:`Plugin.copy_in`, and :meth:`Plugin.run_code` (``domarkx exec``);
* its versions without loading them: :meth:`Plugin.list_version`,
  :meth:`Plugin.read_version`, :meth:`Plugin.diff_versions`;
* its versions elsewhere: :meth:`Plugin.export_versions` /
  :meth:`Plugin.import_versions` (bundles and registries) and
  :meth:`Plugin.collect` (``prune``).

An optional method a plugin does not implement raises :class:`Unsupported`,
which the core reports as "resource type X cannot …" instead of failing.
Paths in this protocol are ``bytes`` relative to the resource's working
directory (``b""`` is its top); :mod:`domarkx.paths` shows them as text.

Two rules every plugin keeps, because instances and forks rely on them:

* ``commit_version`` is idempotent: with no change since the last commit it
  returns the same version id.
* A version committed by one resource can be loaded into any other resource of
  the same plugin in the same home; that is how ``fork`` gives a new instance
  the workspace of an old one.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Collection, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from domarkx.errors import DomarkxError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from domarkx.data.store import Store
    from domarkx.workspace._plugin_models import Resource as Resource
    from domarkx.workspace._plugin_models import ToolSpec as ToolSpec

_MODELS = frozenset({"Resource", "ToolSpec"})
"""The protocol's pydantic models, defined in :mod:`._plugin_models` and imported from there on first use
(:func:`__getattr__`): reading versions (``domarkx diff``) never builds one, so it never pays for pydantic."""


def __getattr__(name: str) -> Any:
    if name in _MODELS:
        from domarkx.workspace import _plugin_models

        return getattr(_plugin_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ToolError(DomarkxError):
    """A tool call that failed in a way the model should see (bad path, time-out, …).

    The workspace manager turns it into an error tool result; it never ends a turn.
    """


class Unsupported(DomarkxError):
    """A resource type that cannot do what was asked (an optional protocol method it lacks)."""


@dataclass(frozen=True)
class CodeRunner:
    """How a plugin runs a code block (offline ``run``) or ``domarkx exec`` input: with one of its tools.

    A block of a language in ``languages`` runs as the call
    ``tool(**{argument: code})``, so it is recorded like any other tool call.
    """

    tool: str
    argument: str
    languages: frozenset[str]
    """Fence languages, lower-case (``bash``, ``python``, ``sql``…)."""


@dataclass(frozen=True)
class Entry:
    """One directory entry of a resource's files, live or in a version."""

    name: bytes
    kind: Literal["file", "dir", "link", "other"]
    size: int = 0
    executable: bool = False
    target: bytes | None = None
    """Where a ``link`` points (never followed)."""


@dataclass(frozen=True)
class Change:
    """One difference between two versions of a resource, as ``domarkx diff`` shows it."""

    kind: str
    """What changed: ``file``, ``schema``, ``row``, ``variable``… (a plugin may add its own)."""
    name: str
    """A display name: a path escaped with :func:`domarkx.paths.escape`, ``table:rowid``, a variable."""
    status: Literal["added", "removed", "modified"]
    added: int = 0
    """Lines (or rows) added, for a stat."""
    removed: int = 0
    detail: str = ""
    """A unified patch, a row before and after, a short repr; empty when there is nothing to show."""
    binary: bool = False


@dataclass(frozen=True)
class ResourceDiff:
    """What changed in one resource between two of its versions."""

    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the comparison could not tell (e.g. "2 variables compared by type only")."""


@dataclass(frozen=True)
class Layer:
    """One file of a resource's versions as it travels in a bundle or to a registry.

    ``path`` holds the bytes; ``digest`` is their ``sha256:…`` (checked on
    arrival before :meth:`Plugin.import_versions` sees the layer).
    """

    media_type: str
    path: Path
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)


OutputSink = Callable[[str], None]
_sink: ContextVar[OutputSink | None] = ContextVar("domarkx_tool_output", default=None)


def emit_output(text: str) -> None:
    """Show output of the running tool as it is produced (``→ run_command(…)`` then the lines).

    Plugins call it with each chunk of a command's output; it goes to whoever
    listens (:func:`streaming_to`: the CLI, the UI) and is a no-op otherwise.
    The tool's result still carries the whole (capped) output.
    """
    sink = _sink.get()
    if sink is not None:
        sink(text)


@contextlib.contextmanager
def streaming_to(sink: OutputSink | None) -> Iterator[None]:
    """Send what tools :func:`emit_output` inside this block to ``sink``."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


ProgressSink = Callable[[str], None]


def _to_stderr(message: str) -> None:
    import sys

    sys.stderr.write(f"· {message}\n")


_progress: ContextVar[ProgressSink] = ContextVar("domarkx_progress", default=_to_stderr)


def report_progress(message: str) -> None:
    """Tell the user what a slow plugin operation is doing (``· restoring python kernel: …``).

    It goes to stderr as a ``·`` line unless the caller routes it elsewhere
    with :func:`progress_to` (a UI, a quiet command).
    """
    _progress.get()(message)


@contextlib.contextmanager
def progress_to(sink: ProgressSink) -> Iterator[None]:
    """Send what plugins :func:`report_progress` inside this block to ``sink``."""
    token = _progress.set(sink)
    try:
        yield
    finally:
        _progress.reset(token)


_notes: ContextVar[list[str] | None] = ContextVar("domarkx_notes", default=None)


def note(text: str) -> None:
    """Tell the user what a commit or load could not do fully, without failing it (an unreadable file left out).

    The workspace manager gathers the notes of a commit into the version it
    returns (:func:`gathering_notes`); callers show them beside the tool results.
    """
    notes = _notes.get()
    if notes is not None:
        notes.append(text)


@contextlib.contextmanager
def gathering_notes() -> Iterator[list[str]]:
    """Collect what plugins :func:`note` inside this block."""
    notes: list[str] = []
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)


PLUGIN_MARKER = ".plugin"
"""File in a resource directory naming the plugin that made it: how ``doctor --repair`` hands a
directory no row names back to its plugin, whatever the resource's id looks like."""


def resource_path(home: Path, resource_id: str) -> Path:
    """Where one resource keeps its private state: the one place the layout is spelled."""
    return home / "resources" / resource_id


@dataclass(frozen=True)
class PluginContext:
    """What a plugin gets from domarkx: where to keep state, and the blob store."""

    home: Path
    store: Store
    plugin_type: str = ""
    """The plugin this context serves; each resource directory it makes records it (see :data:`PLUGIN_MARKER`)."""

    def resource_dir(self, resource_id: str) -> Path:
        """The private directory of one resource (created on demand, marked with its plugin type)."""
        path = resource_path(self.home, resource_id)
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            return path
        if self.plugin_type:
            (path / PLUGIN_MARKER).write_text(self.plugin_type, encoding="utf-8")
        return path

    def plugin_dir(self, plugin_type: str) -> Path:
        """State shared by every resource of one plugin (e.g. a shared object store)."""
        path = self.home / "plugins" / plugin_type
        path.mkdir(parents=True, exist_ok=True)
        return path


class Plugin(abc.ABC):
    """Base class of every resource plugin; register it under ``domarkx.plugins``."""

    code: ClassVar[CodeRunner | None] = None
    """The code this plugin runs (offline ``run``, ``exec``); ``None``: it runs no code blocks."""
    plugin_version: ClassVar[str] = "1"
    """Bump when the same tool call could now give another state: it invalidates the build cache."""
    restorable: ClassVar[bool] = True
    """False for resources whose state lives elsewhere (a remote service): fork and verify say so."""
    config_model: ClassVar[type[BaseModel] | None] = None
    """The pydantic model of the resource's ``workspace-config`` options, checked at import."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context

    @property
    @abc.abstractmethod
    def type(self) -> str:
        """The resource type this plugin manages, as written in ``workspace-config``."""

    @classmethod
    def powers(cls, options: dict[str, Any]) -> list[str]:
        """Options that reach beyond the resource's confinement, one phrase each (empty: none).

        A document that asks for one of these (``sandbox: none``, a host
        network, a program to start) runs only if the user trusts it
        (``domarkx trust``) or passes ``--trust``.
        """
        return []

    @abc.abstractmethod
    def create_resource(self, config: dict[str, Any]) -> Resource:
        """Create a resource from its ``workspace-config`` item (``type``/``name`` removed).

        Invalid config raises :class:`domarkx.errors.UsageError`.
        """

    @abc.abstractmethod
    def list_tools(self, resource_id: str) -> list[ToolSpec]:
        """The tools the resource offers, with JSON schemas for their arguments."""

    @classmethod
    def describe_tools(cls) -> list[ToolSpec]:
        """The tools a resource of this plugin typically offers, known without creating one.

        ``domarkx plugins`` lists these; a plugin whose tools depend on a
        resource's config returns the common ones (the default: none known).
        """
        return []

    @abc.abstractmethod
    def execute_tool(self, resource_id: str, tool_name: str, **kwargs: Any) -> Any:
        """Run a tool; the result must be JSON-serialisable. Raise :class:`ToolError` on failure."""

    def failure(self, output: Any) -> str | None:
        """Why code whose tool returned ``output`` failed, in a few words (``exit 1``, ``ZeroDivisionError``).

        None when it did not. A tool call that raised is a failure anyway; this
        is for code that ran to the end and reports failure in its result, which
        a notebook-grade ``run`` stops at and names in its summary. The default
        reads command results (``exit_code``, ``timed_out``).
        """
        if not isinstance(output, dict) or "exit_code" not in output:
            return None
        if output.get("timed_out"):
            return "timed out"
        code = output["exit_code"]
        return None if code == 0 else f"exit {code}"

    def run_code(self, resource_id: str, code: str, *, stdin: bytes | None = None) -> Any:
        """Run ``code`` as :attr:`code` says (``domarkx exec``); a plugin that takes ``stdin`` overrides this."""
        if self.code is None:
            raise Unsupported(f"{self.type} resources run no code")
        if stdin is not None:
            raise Unsupported(f"{self.type} resources take no standard input")
        return self.execute_tool(resource_id, self.code.tool, **{self.code.argument: code})

    @abc.abstractmethod
    def get_version(self, resource_id: str) -> str:
        """The version the resource was last committed at or loaded from."""

    @abc.abstractmethod
    def commit_version(self, resource_id: str) -> str:
        """Record the resource's current state as an immutable version; return its id."""

    @abc.abstractmethod
    def load_version(self, resource_id: str, version_id: str) -> None:
        """Restore the resource to a version committed by any resource of this plugin."""

    @abc.abstractmethod
    def destroy_resource(self, resource_id: str) -> None:
        """Tear the resource down and delete its private state (versions stay)."""

    def close(self, resource_id: str) -> None:  # noqa: B027 - optional hook, default is nothing to release
        """Release processes or connections held for the resource; its state stays."""

    def missing_versions(self, version_ids: Collection[str]) -> set[str]:
        """Which of these versions could no longer be loaded (``domarkx doctor`` asks, once per plugin).

        The default knows of none missing; a plugin whose versions live outside
        the blob store (a git repository, an image registry) should look.
        """
        return set()

    # -- live files (exec, cp, inspect) ------------------------------------------------

    def location(self, resource_id: str) -> str:
        """Where the resource's tools work, as a person should read it (a host path, ``container:/workspace``)."""
        raise Unsupported(f"{self.type} resources have no working directory")

    def copy_out(self, resource_id: str, path: bytes, dest: Path) -> None:
        """Copy a file or directory of the live resource to ``dest`` on the host (``domarkx cp``)."""
        raise Unsupported(f"{self.type} resources have no files to copy")

    def copy_in(self, resource_id: str, source: Path, path: bytes) -> None:
        """Copy a host file or directory into the live resource at ``path`` (a later commit records it)."""
        raise Unsupported(f"{self.type} resources have no files to copy")

    # -- versions without loading them (diff, file browser, verify) ------------------

    def list_version(self, version_id: str, path: bytes = b"") -> list[Entry]:
        """The entries of directory ``path`` in a version, without loading it."""
        raise Unsupported(f"{self.type} versions cannot be browsed")

    def read_version(self, version_id: str, path: bytes) -> bytes:
        """The bytes of file ``path`` in a version, without loading it."""
        raise Unsupported(f"{self.type} versions cannot be browsed")

    def diff_versions(self, old: str, new: str) -> ResourceDiff:
        """What changed from version ``old`` to ``new``.

        The default compares files through :meth:`list_version` and
        :meth:`read_version` (see :func:`domarkx.workspace.diff.file_diff`), so a
        plugin that can be browsed can be diffed.
        """
        from domarkx.workspace.diff import file_diff

        return file_diff(self, old, new)

    # -- versions elsewhere (save/load, push/pull, prune) --------------------------

    def export_versions(self, version_ids: Sequence[str], into: Path, *, have: Collection[str] = ()) -> list[Layer]:
        """Write files under ``into`` from which another home can load these versions.

        ``have``: versions the receiver already holds, so only what they lack
        needs to travel (a git pack of the new objects, a blob per new backup).
        """
        raise Unsupported(f"{self.type} versions cannot leave this home")

    def import_versions(self, layers: Sequence[Layer]) -> None:
        """Take in layers :meth:`export_versions` wrote elsewhere (digests already checked).

        Importing what is already here is a no-op; a layer that does not hold
        what it claims raises :class:`domarkx.errors.StoreError` and adds nothing.
        """
        raise Unsupported(f"{self.type} versions cannot be brought into this home")

    def collect(self, live: Collection[str]) -> int:
        """Delete stored versions of this plugin not in ``live`` (``domarkx prune``); return bytes freed."""
        return 0
