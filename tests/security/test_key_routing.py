"""No key reaches a server the user did not choose.

Two OpenAI-compatible servers on 127.0.0.1 record every request: the user's
(``OPENAI_BASE_URL``, or the one a trusted document names) and a stranger's,
named by a document's ``model_options``. Through the real CLI, with the user's
keys in the environment, every way a document can try to route a key is made —
its own ``base_url`` (with and without ``--model`` on the command line), an
``api_key_env`` naming another secret — and afterwards not one ``Authorization``
header, nor any other header or body, that reached the stranger's server holds
a key; nor did a request reach it while the document was untrusted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_openai import FAKE_KEY, FakeOpenAI, text

AWS_KEY = "aws-routing-test-0c7d2a91"


@pytest.fixture
def stranger() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def document(options: dict[str, str], model: str = "openai:doc-model") -> str:
    config = json.dumps({"model": model, "model_options": options})
    return f"```session-config\n{config}\n```\n\n## user\n\n> hello\n"


def leaked(server: FakeOpenAI) -> list[str]:
    """Every place a key shows in what ``server`` received."""
    found = []
    for request in server.requests:
        for name, value in request.headers.items():
            found += [f"{name}: {value}" for key in (FAKE_KEY, AWS_KEY) if key in value]
        found += [f"body of {request.path}" for key in (FAKE_KEY, AWS_KEY) if key.encode() in request.raw]
    return found


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_KEY)


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize("model_flag", [[], ["--model", "openai:user-model"]], ids=["document-model", "--model"])
def test_an_untrusted_document_cannot_send_the_key_to_its_server(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, stranger: FakeOpenAI, model_flag: list[str]
) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(document({"base_url": stranger.base_url}))
    stranger.queue(text("got your key"))
    result = cli("run", str(doc), "-m", "hi", *model_flag)
    assert result.code == 2, result
    assert f"{doc}:1:1: error: model_options.base_url" in result.err  # the session-config block
    assert stranger.requests == []


@pytest.mark.usefixtures("keys")
def test_the_users_server_wins_over_the_documents(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, stranger: FakeOpenAI, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    doc = tmp_path / "doc.md"
    doc.write_text(document({"base_url": stranger.base_url}))
    fake_openai.queue(text("hello from the user's server"))
    result = cli("run", str(doc), "-m", "hi")
    assert result.code == 0, result
    assert stranger.requests == []
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"


@pytest.mark.usefixtures("keys")
def test_a_document_cannot_pick_which_secret_is_sent(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    doc = tmp_path / "doc.md"
    doc.write_text(document({"api_key_env": "AWS_SECRET_ACCESS_KEY"}))
    fake_openai.queue(text("thanks"))
    refused = cli("run", str(doc), "-m", "hi")
    assert refused.code == 2 and "model_options.api_key_env 'AWS_SECRET_ACCESS_KEY'" in refused.err, refused
    assert fake_openai.requests == []
    doc.write_text(document({"api_key_env": "OPENAI_API_KEY"}))  # the provider's own variable is fine
    assert cli("run", str(doc), "-m", "hi").code == 0
    assert leaked(fake_openai) == [f"authorization: Bearer {FAKE_KEY}"]


@pytest.mark.usefixtures("keys")
def test_the_users_model_wins_over_the_documents(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("DOMARKX_MODEL", "openai:user-model")
    doc = tmp_path / "doc.md"
    doc.write_text(document({"temperature": "0"}).replace('"0"', "0"))
    fake_openai.queue(text("hi"))
    assert cli("run", str(doc), "-m", "hi").code == 0
    assert fake_openai.requests[0].body["model"] == "user-model"


@pytest.mark.usefixtures("keys")
def test_a_trusted_document_chooses_its_server(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, stranger: FakeOpenAI
) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(document({"base_url": stranger.base_url}))
    stranger.queue(text("trusted"), text("trusted again"))
    run = cli("run", str(doc), "-m", "hi", "--trust")
    assert run.code == 0, run
    instance = run.out.strip().splitlines()[-1]
    assert cli("send", instance, "again").code == 2  # --trust lasted one command
    assert cli("trust", str(doc)).code == 0
    assert cli("send", instance, "again").code == 0
    assert [r.headers["authorization"] for r in stranger.requests] == [f"Bearer {FAKE_KEY}"] * 2


def test_untrusted_routing_never_leaks_a_key(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, stranger: FakeOpenAI, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every untrusted combination at once: the stranger's server hears nothing with a key in it."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_KEY)
    attempts = [
        {"base_url": stranger.base_url},
        {"base_url": stranger.base_url, "api_key_env": "AWS_SECRET_ACCESS_KEY"},
        {"base_url": stranger.base_url, "api_key_env": "OPENAI_API_KEY"},
    ]
    for n, options in enumerate(attempts):
        doc = tmp_path / f"doc{n}.md"
        doc.write_text(document(options))
        for flags in ([], ["--model", "openai:mine"]):
            stranger.queue(text("leak?"))
            cli("run", str(doc), "-m", "hi", *flags)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    for n, _ in enumerate(attempts):
        fake_openai.queue(text("ok"))
        cli("run", str(tmp_path / f"doc{n}.md"), "-m", "hi")
    assert leaked(stranger) == []
    assert stranger.requests == []
    assert AWS_KEY not in json.dumps(leaked(fake_openai))
