"""Credentials where docker keeps them: config.json's auths and credential helpers."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from domarkx.errors import DomarkxError
from domarkx.transfer import credentials
from domarkx.transfer.credentials import Credential


def write(config: Path, data: object) -> None:
    config.mkdir(exist_ok=True)
    (config / "config.json").write_text(json.dumps(data))


def test_the_forms_docker_writes(docker_config: Path) -> None:
    auth = base64.b64encode(b"me:pa:ss").decode()
    write(
        docker_config,
        {
            "auths": {
                "https://ghcr.io/v2/": {"auth": auth},
                "localhost:5000": {"username": "u", "password": "p"},
                "https://index.docker.io/v1/": {"identitytoken": "tok"},
                "empty.example": {},
            }
        },
    )
    assert credentials.lookup("ghcr.io") == Credential("me", "pa:ss")
    assert credentials.lookup("localhost:5000") == Credential("u", "p")
    hub = credentials.lookup("docker.io")
    assert hub is not None and hub.is_token and hub.secret == "tok"
    assert credentials.lookup("empty.example") is None
    assert credentials.lookup("other.example") is None
    assert "pa:ss" not in repr(credentials.lookup("ghcr.io"))


def test_store_keeps_other_settings_and_hides_the_file(docker_config: Path) -> None:
    write(docker_config, {"auths": {"https://ghcr.io": {"auth": "old"}}, "psFormat": "table"})
    credentials.store("ghcr.io", Credential("me", "new-secret"))
    data = json.loads((docker_config / "config.json").read_text())
    assert data["psFormat"] == "table"
    assert list(data["auths"]) == ["ghcr.io"]
    assert stat.S_IMODE((docker_config / "config.json").stat().st_mode) == 0o600
    assert credentials.lookup("ghcr.io") == Credential("me", "new-secret")
    assert credentials.erase("ghcr.io") and not credentials.erase("ghcr.io")


def test_a_damaged_config_is_one_clear_error(docker_config: Path) -> None:
    docker_config.mkdir()
    (docker_config / "config.json").write_text("{not json")
    with pytest.raises(DomarkxError, match="cannot read"):
        credentials.lookup("ghcr.io")
    write(docker_config, {"auths": {"ghcr.io": {"auth": "%%%"}}})
    with pytest.raises(DomarkxError, match="not valid base64"):
        credentials.lookup("ghcr.io")


def test_a_missing_or_hostile_helper(docker_config: Path) -> None:
    write(docker_config, {"credHelpers": {"ghcr.io": "nonexistent-helper"}})
    with pytest.raises(DomarkxError, match="docker-credential-nonexistent-helper is not installed"):
        credentials.lookup("ghcr.io")
    write(docker_config, {"credsStore": "../../bin/sh"})
    with pytest.raises(DomarkxError, match="invalid credential helper"):
        credentials.lookup("ghcr.io")
