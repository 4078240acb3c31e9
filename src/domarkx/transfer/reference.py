"""Registry references: ``REGISTRY/REPO[:TAG|@DIGEST]``, checked against the distribution spec's grammar.

The registry is always written out (``ghcr.io/team/demo``, ``localhost:5000/demo``,
``docker.io/me/demo``): a session never goes to Docker Hub because a host was
left off, as an image would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domarkx import ids
from domarkx.errors import UsageError

_HOST = re.compile(
    r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?"
)
_NAME = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_DOCKER_HUB = "docker.io"
_FORM = "write REGISTRY/REPO[:TAG] or REGISTRY/REPO@sha256:…, e.g. localhost:5000/team/demo:v1"


@dataclass(frozen=True)
class Reference:
    """A parsed reference: ``tag`` or ``digest`` (never both); ``tag`` defaults to ``latest``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Where the API lives: Docker Hub's is not the name people write."""
        return "registry-1.docker.io" if self.registry == _DOCKER_HUB else self.registry

    @property
    def target(self) -> str:
        """The tag or digest a manifest request names."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        where = f"{self.registry}/{self.repository}"
        return f"{where}@{self.digest}" if self.digest else f"{where}:{self.target}"


def parse(text: str) -> Reference:
    """Parse ``text``; anything off the grammar is a usage error saying what a reference looks like."""
    rest, _, digest = text.partition("@")
    host, slash, path = rest.partition("/")
    if not slash or not _looks_like_host(host):
        raise UsageError(f"{text!r} names no registry", hint=_FORM + " (for Docker Hub: docker.io/USER/REPO)")
    if not _HOST.fullmatch(host):
        raise UsageError(f"invalid registry {host!r} in {text!r}", hint=_FORM)
    name, tag = path, None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = path.rpartition(":")
    if not _NAME.fullmatch(name) or len(f"{host}/{name}") > 255:
        raise UsageError(
            f"invalid repository name {name!r} in {text!r}",
            hint="lower-case letters and digits, separated by . _ __ - or /",
        )
    if tag is not None and not _TAG.fullmatch(tag):
        raise UsageError(f"invalid tag {tag!r} in {text!r}", hint="up to 128 letters, digits, _ . and -")
    if digest and not ids.is_digest(digest):
        raise UsageError(f"invalid digest {digest!r} in {text!r}", hint="a digest is sha256: and 64 hex digits")
    if digest and tag is not None:
        raise UsageError(f"{text!r} has both a tag and a digest", hint="give one of them")
    if host == "index.docker.io":
        host = _DOCKER_HUB
    return Reference(registry=host, repository=name, tag=tag, digest=digest or None)


def _looks_like_host(part: str) -> bool:
    """Docker's rule: a first component is a host if it has a dot or a port, or is localhost."""
    return "." in part or ":" in part or part == "localhost" or part.startswith("[")
