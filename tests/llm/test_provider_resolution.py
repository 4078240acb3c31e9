"""Which provider and model a session gets, and how its options are checked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.metadata import EntryPoint

import pytest

from domarkx import _entrypoints
from domarkx.data.models import SessionSnapshot
from domarkx.errors import DomarkxError, UsageError
from domarkx.llm.base import (
    ChatMessage,
    Completion,
    Provider,
    ProviderOptions,
    TextCallback,
    ToolCall,
    ToolDefinition,
    get_provider,
    resolve_model,
)
from domarkx.llm.openai_provider import OpenAIProvider
from domarkx.llm.replay import ReplayProvider
from domarkx.trust import DocumentTrust


class ShoutOptions(ProviderOptions):
    volume: int = 1


class ShoutProvider(Provider):
    """A third-party provider, registered the way a plugin package would register it."""

    name = "shout"
    Options = ShoutOptions
    options: ShoutOptions

    def complete(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolDefinition],
        *,
        on_text: TextCallback | None = None,
    ) -> Completion:
        return Completion(content=messages[-1].content.upper() + "!" * self.options.volume, model=self.model)


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adds ``shout`` (and a broken ``notaprovider``) to the installed providers."""
    installed = _entrypoints._group

    def group(name: str) -> Mapping[str, EntryPoint]:
        found = dict(installed(name))
        if name == _entrypoints.PROVIDERS:
            for ep_name, target in [("shout", "ShoutProvider"), ("notaprovider", "ShoutOptions")]:
                found[ep_name] = EntryPoint(name=ep_name, value=f"{__name__}:{target}", group=name)
        return found

    monkeypatch.setattr(_entrypoints, "_group", group)


def test_the_built_in_providers_are_entry_points() -> None:
    assert {"openai", "anthropic", "replay"} <= set(_entrypoints.names(_entrypoints.PROVIDERS))


def test_model_flag_wins_over_session_config_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMARKX_MODEL", "replay:from-env")
    assert resolve_model("replay:", {"model": "replay:from-config"}) == ("replay:", "--model")


def test_the_users_environment_wins_over_session_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMARKX_MODEL", "replay:from-env")
    assert resolve_model(None, {"model": "replay:from-config"}) == ("replay:from-env", "DOMARKX_MODEL")


def test_session_config_is_the_last_resort(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model(None, {"model": "replay:from-config"}) == ("replay:from-config", "session-config")
    monkeypatch.setenv("DOMARKX_MODEL", "replay:echo")
    provider = get_provider(None, {})
    assert isinstance(provider, ReplayProvider)
    assert provider.model == "echo"


def test_no_model_anywhere_explains_the_three_ways() -> None:
    with pytest.raises(UsageError, match="no model chosen") as caught:
        get_provider(None, {})
    hint = caught.value.hint or ""
    for way in ("--model", "session-config", "DOMARKX_MODEL", "replay:"):
        assert way in hint


def test_the_model_part_may_contain_colons(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    provider = get_provider("openai:llama3:8b", {})
    assert isinstance(provider, OpenAIProvider)
    assert provider.model == "llama3:8b"


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown provider 'gemini'") as caught:
        get_provider("gemini:pro", {})
    assert "openai" in (caught.value.hint or "")
    assert "replay" in (caught.value.hint or "")


@pytest.mark.parametrize("spec", ["gpt-4o", ":gpt-4o"])
def test_a_spec_without_provider_is_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError, match="is not PROVIDER:MODEL"):
        get_provider(spec, {})


def test_a_model_in_session_config_must_be_a_string() -> None:
    with pytest.raises(UsageError, match='"model" must be a string'):
        get_provider(None, {"model": 4})


def test_model_options_reach_the_provider() -> None:
    config = {
        "model": "openai:m",
        "model_options": {"base_url": "http://127.0.0.1:8000/v1/", "temperature": 0.5},
    }
    provider = get_provider(None, config, trust=DocumentTrust(SessionSnapshot(document=""), granted=True))
    assert isinstance(provider, OpenAIProvider)
    assert provider.base_url == "http://127.0.0.1:8000/v1"
    assert provider.options.temperature == 0.5


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"base_url": "http://127.0.0.1:8000/v1"}, "picks the server"),
        ({"api_key_env": "AWS_SECRET_ACCESS_KEY"}, "picks which of your variables"),
    ],
)
def test_a_stranger_may_not_route_the_key(options: dict[str, str], says: str) -> None:
    config = {"model": "openai:m", "model_options": options}
    for spec in (None, "openai:from-the-command-line"):
        with pytest.raises(UsageError, match=says):
            get_provider(spec, config)
        with pytest.raises(UsageError, match=says):
            get_provider(spec, config, trust=DocumentTrust(SessionSnapshot(document=""), granted=False))


def test_a_stranger_may_name_the_providers_own_key_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-own")
    provider = get_provider(None, {"model": "openai:m", "model_options": {"api_key_env": "OPENAI_API_KEY"}})
    assert isinstance(provider, OpenAIProvider)


def test_the_users_server_wins_over_the_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:7/v1")
    for granted in (False, True):
        trust = DocumentTrust(SessionSnapshot(document=""), granted=granted)
        provider = get_provider(None, {"model": "openai:m", "model_options": {"base_url": "http://x/v1"}}, trust=trust)
        assert isinstance(provider, OpenAIProvider)
        assert provider.base_url == "http://127.0.0.1:7/v1"


def test_model_options_for_another_provider_are_not_applied() -> None:
    config = {"model": "openai:m", "model_options": {"base_url": "http://127.0.0.1:8000/v1"}}
    assert isinstance(get_provider("replay:", config), ReplayProvider)


def test_an_options_typo_names_the_key_and_the_known_ones() -> None:
    config = {"model": "openai:m", "model_options": {"base_url": "http://127.0.0.1:1/v1", "temprature": 0.5}}
    with pytest.raises(UsageError, match="unknown model option 'temprature' for provider openai") as caught:
        get_provider(None, config)
    assert "temperature" in (caught.value.hint or "")


def test_an_option_of_the_wrong_type_names_the_key() -> None:
    config = {
        "model": "openai:m",
        "model_options": {"base_url": "http://127.0.0.1:1/v1", "temperature": "hot"},
    }
    with pytest.raises(UsageError, match="model option 'temperature' for provider openai"):
        get_provider(None, config)


def test_model_options_must_be_an_object() -> None:
    with pytest.raises(UsageError, match='"model_options" must be an object'):
        get_provider("replay:", {"model_options": ["temperature"]})


@pytest.mark.parametrize("key", ["api_key", "token", "Secret", "groq_api_key"])
def test_credentials_in_options_are_refused(key: str) -> None:
    with pytest.raises(UsageError, match="credentials are never written in documents"):
        get_provider("replay:", {"model_options": {key: "sk-x"}})


@pytest.mark.usefixtures("third_party")
def test_a_third_party_provider_loads_from_its_entry_point() -> None:
    provider = get_provider("shout:loud", {"model": "shout:quiet", "model_options": {"volume": 3}})
    assert isinstance(provider, ShoutProvider)
    assert provider.complete([ChatMessage("user", "hi")], []).content == "HI!!!"


@pytest.mark.usefixtures("third_party")
def test_an_entry_point_that_is_not_a_provider_is_reported() -> None:
    with pytest.raises(DomarkxError, match="is not a Provider subclass"):
        get_provider("notaprovider:x", {})


def test_providers_close_as_context_managers() -> None:
    with get_provider("replay:", {}) as provider:
        assert provider.complete([ChatMessage("user", "hi")], []).content == "You said: hi"


def test_chat_messages_check_their_shape() -> None:
    with pytest.raises(ValueError, match="tool_call_id"):
        ChatMessage("tool", "result")
    with pytest.raises(ValueError, match="cannot carry tool calls"):
        ChatMessage("user", "hi", tool_calls=[_call()])
    assert ChatMessage("assistant", "", tool_calls=[_call()]).tool_calls == (_call(),)


def _call() -> ToolCall:
    return ToolCall("c1", "f", {})


@pytest.mark.parametrize("name", ["has space", "", "x" * 65, "dots.not.allowed"])
def test_tool_names_models_reject_are_refused(name: str) -> None:
    with pytest.raises(DomarkxError, match="cannot be offered to a model"):
        ToolDefinition(name, "d", {"type": "object"})
