"""Registry references and auth challenges, parsed as the specs write them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domarkx import ids
from domarkx.errors import UsageError
from domarkx.transfer.reference import Reference, parse
from domarkx.transfer.registry import parse_challenge

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:5000/demo", Reference("localhost:5000", "demo")),
        ("localhost/demo:v1", Reference("localhost", "demo", tag="v1")),
        ("ghcr.io/team/sub/demo:2024.1_rc-1", Reference("ghcr.io", "team/sub/demo", tag="2024.1_rc-1")),
        (f"127.0.0.1:5000/a__b.c-d@{DIGEST}", Reference("127.0.0.1:5000", "a__b.c-d", digest=DIGEST)),
        ("[::1]:5000/demo", Reference("[::1]:5000", "demo")),
        ("index.docker.io/me/demo", Reference("docker.io", "me/demo")),
    ],
)
def test_references(text: str, expected: Reference) -> None:
    assert parse(text) == expected
    assert str(parse(str(parse(text)))) == str(parse(text))  # shown as it parses


def test_docker_hub_is_named_not_assumed() -> None:
    assert parse("docker.io/me/demo").api_host == "registry-1.docker.io"
    with pytest.raises(UsageError, match="names no registry"):
        parse("me/demo")


@pytest.mark.parametrize(
    "text",
    [
        "demo",
        "localhost:5000/",
        "localhost:5000/Demo",
        "localhost:5000/de..mo",
        "localhost:5000/demo:",
        "localhost:5000/demo:.x",
        "localhost:5000/demo:" + "x" * 129,
        "localhost:5000/demo@sha256:1234",
        "localhost:5000/demo@md5:" + "0" * 32,
        f"localhost:5000/demo:v1@{DIGEST}",
        "local host:5000/demo",
        "localhost:5000/demo\n:v1",
        "exa_mple.com/demo",
    ],
)
def test_bad_references(text: str) -> None:
    with pytest.raises(UsageError):
        parse(text)


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
            'scope="repository:team/demo:pull,push"',
            "bearer",
            {
                "realm": "https://auth.example.com/token",
                "service": "registry.example.com",
                "scope": "repository:team/demo:pull,push",
            },
        ),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        ('bearer realm="a\\"b", error=insufficient_scope', "bearer", {"realm": 'a"b', "error": "insufficient_scope"}),
        ("", "", {}),
    ],
)
def test_challenges(header: str, scheme: str, params: dict[str, str]) -> None:
    assert parse_challenge(header) == (scheme, params)


_COMPONENT = st.from_regex(r"[a-z0-9]+([._-][a-z0-9]+)?", fullmatch=True).filter(lambda c: len(c) <= 30)
_HOSTS = st.sampled_from(
    ["localhost", "localhost:5000", "127.0.0.1:5000", "ghcr.io", "registry.example.com:443", "[::1]:5000"]
)


@given(
    host=_HOSTS,
    path=st.lists(_COMPONENT, min_size=1, max_size=4),
    tag=st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,40}", fullmatch=True),
    digest=st.none() | st.binary(min_size=1, max_size=8).map(lambda b: ids.digest_bytes(b)),
)
def test_every_valid_reference_reads_back(host: str, path: list[str], tag: str | None, digest: str | None) -> None:
    text = f"{host}/{'/'.join(path)}" + (f"@{digest}" if digest else f":{tag}" if tag else "")
    ref = parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        host,
        "/".join(path),
        None if digest else tag,
        digest,
    )
    assert parse(str(ref)).target == ref.target


@given(st.text(max_size=60))
def test_any_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        ref = parse(text)
    except UsageError:
        return
    assert "\n" not in str(ref) and " " not in str(ref)
