"""Registry credentials where docker and oras keep them: never in the domarkx store, never printed.

The docker client's configuration (``$DOCKER_CONFIG/config.json``, by default
``~/.docker/config.json``) is the one place, so ``docker login``, ``oras login``
and ``domarkx login`` share credentials. For a registry, in docker's order:

1. ``credHelpers[registry]``: run ``docker-credential-<helper> get``;
2. ``credsStore``: the same with the default helper;
3. ``auths[registry]``: ``auth`` (base64 of ``user:password``), or
   ``username``/``password``, or ``identitytoken`` (an OAuth2 refresh token).

``login`` stores through the helper when one applies, otherwise into
``auths`` (the file is rewritten atomically, mode 0600, other keys kept).
Docker Hub's entries are keyed ``https://index.docker.io/v1/``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domarkx.errors import DomarkxError, UsageError

_HUB_KEY = "https://index.docker.io/v1/"
_HELPER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HELPER_TIMEOUT = 30.0
TOKEN_USER = "<token>"  # noqa: S105 - a marker name, not a secret
"""The user name credential helpers give with an identity (refresh) token."""


@dataclass(frozen=True)
class Credential:
    username: str
    secret: str

    @property
    def is_token(self) -> bool:
        """An identity token for the OAuth2 refresh flow rather than a password."""
        return self.username == TOKEN_USER

    def __repr__(self) -> str:  # never show the secret, even in a traceback
        return f"Credential(username={self.username!r}, secret=***)"


def config_path() -> Path:
    """Docker's client configuration file, honouring ``DOCKER_CONFIG``."""
    base = os.environ.get("DOCKER_CONFIG")
    return (Path(base) if base else Path.home() / ".docker") / "config.json"


def _key(registry: str) -> str:
    return _HUB_KEY if registry == "docker.io" else registry


def _host_of(key: str) -> str:
    """A config key as a registry: ``https://ghcr.io/v2/`` and ``ghcr.io`` are the same entry."""
    if key == _HUB_KEY:
        return "docker.io"
    return key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]


def _read_config() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DomarkxError(f"cannot read {path}: {exc}", hint="fix or remove the file, then `domarkx login`") from exc
    if not isinstance(data, dict):
        raise DomarkxError(f"{path} is not a JSON object", hint="fix or remove the file, then `domarkx login`")
    return data


def _helper(config: dict[str, Any], registry: str) -> str | None:
    helpers = config.get("credHelpers") or {}
    for key, name in helpers.items() if isinstance(helpers, dict) else ():
        if _host_of(key) == registry and isinstance(name, str):
            return name
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def lookup(registry: str) -> Credential | None:
    """The credential configured for ``registry``, if any."""
    config = _read_config()
    helper = _helper(config, registry)
    if helper is not None:
        return _helper_get(helper, _key(registry))
    auths = config.get("auths") or {}
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        if _host_of(key) == registry and isinstance(entry, dict):
            return _from_entry(entry, key)
    return None


def _from_entry(entry: dict[str, Any], key: str) -> Credential | None:
    if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
        return Credential(TOKEN_USER, entry["identitytoken"])
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, sep, password = base64.b64decode(entry["auth"], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise DomarkxError(
                f"the stored credential for {key} is not valid base64", hint=f"run `domarkx login {_host_of(key)}`"
            ) from exc
        return Credential(user, password) if sep else None
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str) and name:
        return Credential(name, secret)
    return None


def store(registry: str, credential: Credential) -> str:
    """Keep ``credential`` for ``registry``; return where it went (for the message)."""
    config = _read_config()
    helper = _helper(config, registry)
    if helper is not None:
        payload = {"ServerURL": _key(registry), "Username": credential.username, "Secret": credential.secret}
        _run_helper(helper, "store", json.dumps(payload))
        return f"docker-credential-{helper}"
    auths = config.setdefault("auths", {})
    for key in [k for k in auths if _host_of(k) == registry]:
        del auths[key]
    token = base64.b64encode(f"{credential.username}:{credential.secret}".encode()).decode()
    auths[_key(registry)] = {"auth": token}
    _write_config(config)
    return str(config_path())


def erase(registry: str) -> bool:
    """Forget the credential of ``registry``; False if there was none."""
    config = _read_config()
    helper = _helper(config, registry)
    if helper is not None:
        return _run_helper(helper, "erase", _key(registry)) is not None
    auths = config.get("auths") or {}
    keys = [k for k in auths if _host_of(k) == registry]
    for key in keys:
        del auths[key]
    if keys:
        _write_config(config)
    return bool(keys)


def _write_config(config: dict[str, Any]) -> None:
    path = config_path()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config.json.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent="\t")
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        raise DomarkxError(f"cannot write {path}: {exc.strerror or exc}") from exc


# -- credential helpers (docker's protocol) ---------------------------------------------


def _helper_get(helper: str, server: str) -> Credential | None:
    out = _run_helper(helper, "get", server)
    if out is None:
        return None
    try:
        data = json.loads(out)
        return Credential(str(data["Username"]), str(data["Secret"])) if data.get("Secret") else None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DomarkxError(f"docker-credential-{helper} gave an answer that is not a credential") from exc


def _run_helper(helper: str, action: str, stdin: str) -> str | None:
    """Run ``docker-credential-<helper> <action>``; None when it has no credential for the server."""
    if not _HELPER.fullmatch(helper):
        raise UsageError(f"invalid credential helper name {helper!r} in {config_path()}")
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise DomarkxError(
            f"the credential helper docker-credential-{helper} is not installed",
            hint=f"install it, or change credsStore/credHelpers in {config_path()}",
        )
    try:
        done = subprocess.run(
            [program, action], input=stdin, capture_output=True, text=True, timeout=_HELPER_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DomarkxError(f"docker-credential-{helper} {action} failed: {exc}") from exc
    if done.returncode != 0:
        said = (done.stdout or done.stderr).strip()
        if "not found" in said.lower():
            return None
        last = said.splitlines()[-1] if said else "no output"
        raise DomarkxError(f"docker-credential-{helper} {action} failed: {last}")
    return done.stdout
