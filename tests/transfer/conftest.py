"""Fixtures of the transfer tests: the test plugin, several homes, and sessions to move between them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from registry_service import Registry, TokenServer, make_certificate, make_htpasswd
from transfer_helpers import DOC, Homes

from domarkx import _entrypoints

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def testfiles_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test-only distribution registering ``testfiles`` (a directory for sys.path or PYTHONPATH)."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "domarkx_test_files-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: domarkx-test-files\nVersion: 0\n")
    (dist / "entry_points.txt").write_text(
        "[domarkx.plugins]\ntestfiles = files_plugin:FilesPlugin\ntestimages = files_plugin:ImagesPlugin\n"
    )
    return site


@pytest.fixture(autouse=True)
def testfiles_plugin(testfiles_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register ``testfiles`` through that distribution: the same entry-point path as any plugin."""
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.syspath_prepend(str(testfiles_site))
    _entrypoints._group.cache_clear()
    yield
    _entrypoints._group.cache_clear()


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Homes:
    return Homes(tmp_path / "homes", monkeypatch)


@pytest.fixture
def make_session(cli, tmp_path: Path) -> Callable[..., str]:  # type: ignore[no-untyped-def]
    """Run a document in the current home; return the instance id."""

    def make(text: str = DOC, name: str | None = None) -> str:
        doc = tmp_path / "doc.md"
        doc.write_text(text)
        args = ["run", str(doc), "-q"] + (["--name", name] if name else [])
        result = cli(*args)
        assert result.code == 0, result
        return str(result.out.strip().splitlines()[-1])

    return make


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Credentials go to a private docker config, never the developer's ~/.docker."""
    config = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    for key in ("DOMARKX_INSECURE_REGISTRIES", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(key, raising=False)
        monkeypatch.delenv(key.lower(), raising=False)
    return config


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain-HTTP registry without auth, shared by a module's tests (each uses its own repositories)."""
    registry = Registry(tmp_path_factory.mktemp("registry")).start()
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def secure_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A TLS registry (self-signed certificate) with basic auth (bcrypt htpasswd)."""
    root = tmp_path_factory.mktemp("secure-registry")
    registry = Registry(root, tls=make_certificate(root), htpasswd=make_htpasswd(root)).start()
    yield registry
    registry.stop()


@pytest.fixture
def own_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry for one test alone (one it may kill)."""
    registry = Registry(tmp_path / "own-registry")
    registry.root.mkdir()
    yield registry.start()
    registry.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry in token mode with its token service: the Bearer flow of Docker Hub, GHCR, Harbor."""
    root = tmp_path_factory.mktemp("token-registry")
    token = TokenServer(root)
    registry = Registry(root, token=token).start()
    yield registry
    registry.stop()
    token.close()
