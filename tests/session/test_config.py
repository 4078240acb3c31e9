"""Configuration mistakes are caught at import, at the key: session-config, workspace-config, model_options.

Through ``domarkx import`` (the real entry point), plus the parts that have no
CLI of their own (finding a key's position, telling a secret's name).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domarkx import _entrypoints
from domarkx.data.models import Block
from domarkx.errors import DocumentError, UsageError
from domarkx.session.config import _json_offset, _yaml_offset, check, is_secret

Cli = Callable[..., Any]
BODY = "\n## user\n\n> hi\n"


def session(config: str) -> str:
    return f"---\ntitle: t\n---\n\n```session-config\n{config}\n```\n{BODY}"


def workspace(config: str) -> str:
    return f"```workspace-config\n{config}\n```\n{BODY}"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # errors name the document as given: doc.md


def imported(cli: Cli, tmp_path: Path, text: str) -> Any:
    (tmp_path / "doc.md").write_text(text)
    return cli("import", "doc.md")


CASES = [
    pytest.param(
        session('{"engin": "local_shell"}'),
        "doc.md:6:2: error: unknown session-config key 'engin' (did you mean 'engine'?)",
        "session-config keys: approve, engine, model, model_options, timeout",
        id="engin",
    ),
    pytest.param(
        session('{\n  "model": "openai:gpt-4o-mini",\n  "model_options": {"temprature": 0.2}\n}'),
        "doc.md:8:21: error: unknown openai model option 'temprature' (did you mean 'temperature'?)",
        "openai model options: api_key_env, base_url, max_retries, max_tokens, seed, stop, stream,"
        " stream_usage, temperature, timeout, top_p",
        id="temprature",
    ),
    pytest.param(
        workspace("resources:\n  - type: local_shell\n    timout: 5"),
        "doc.md:4:5: error: unknown local_shell option 'timout' (did you mean 'timeout'?)",
        "local_shell options: files, max_output, max_size, max_timeout, sandbox, timeout",
        id="timout",
    ),
    pytest.param(
        workspace("resources:\n  - type: sqlite\n    name: db\n  - type: sqlite\n    name: db2\n    max_rows: 0"),
        "doc.md:7:5: error: sqlite option 'max_rows': input should be greater than or equal to 1",
        "sqlite options: max_output, max_rows, setup, timeout",
        id="second-resource-value",
    ),
    pytest.param(
        session('{"engine": "local_shel"}'),
        "doc.md:6:2: error: session-config: unknown plugin 'local_shel' (did you mean 'local_shell'?)",
        None,
        id="engine-name",
    ),
    pytest.param(
        session('{"engine": "sqlite", "timeout": "soon"}'),
        "doc.md:6:22: error: session-config key 'timeout': input should be a valid number,"
        " unable to parse string as a number",
        None,
        id="timeout-type",
    ),
    pytest.param(
        session('{"model": "opena:gpt-4o"}'),
        "doc.md:6:2: error: session-config: unknown provider 'opena' (did you mean 'openai'?)",
        "known providers: anthropic, openai, replay",
        id="provider-name",
    ),
    pytest.param(
        session('{"model": "gpt-4o"}'),
        "doc.md:6:2: error: session-config: model 'gpt-4o' is not PROVIDER:MODEL",
        None,
        id="model-form",
    ),
    pytest.param(
        session('{"approve": "yes"}'),
        "doc.md:6:2: error: session-config key 'approve': input should be a valid boolean",
        None,
        id="approve-strict",
    ),
    pytest.param(
        workspace("resources:\n  - type: local_shel"),
        "doc.md:3:1: error: unknown resource type 'local_shel' (did you mean 'local_shell'?)",
        None,
        id="resource-type",
    ),
]


@pytest.mark.parametrize(("text", "first", "hint"), CASES)
def test_a_mistake_is_one_error_at_its_key_and_nothing_is_stored(
    cli: Cli, tmp_path: Path, text: str, first: str, hint: str | None
) -> None:
    result = imported(cli, tmp_path, text)

    assert result.code == 2, result
    lines = result.err.splitlines()
    assert lines[0] == first
    assert len(lines) == 2 and lines[1].startswith("  hint: ")
    if hint is not None:
        assert lines[1] == f"  hint: {hint}"
    assert cli("snapshots", "ls", "-q").out == ""


@pytest.mark.parametrize(
    ("text", "first"),
    [
        (
            session('{"model": "openai:m", "model_options": {"api_key": "sk-live-1"}}'),
            "doc.md:6:41: error: session-config key 'model_options.api_key'",
        ),
        (session('{"token": "t0ps3cret"}'), "doc.md:6:2: error: session-config key 'token'"),
        (
            workspace(
                "resources:\n  - type: docker_sandbox\n    image: alpine\n    environment:\n      GITHUB_TOKEN: ghp_x"
            ),
            "doc.md:6:7: error: docker_sandbox option 'environment.GITHUB_TOKEN'",
        ),
        (
            workspace("resources:\n  - type: local_shell\n    password: hunter2"),
            "doc.md:4:5: error: local_shell option 'password'",
        ),
    ],
    ids=["model-api_key", "top-token", "nested-env", "plugin-password"],
)
def test_a_credential_never_reaches_the_store(
    cli: Cli, tmp_path: Path, domarkx_home: Path, text: str, first: str
) -> None:
    result = imported(cli, tmp_path, text)

    assert result.code == 2
    assert result.err.startswith(first + " looks like a credential: documents never hold secrets\n"), result.err
    stored = b"".join(p.read_bytes() for p in domarkx_home.rglob("*") if p.is_file())
    for secret in (b"sk-live-1", b"t0ps3cret", b"ghp_x", b"hunter2"):
        assert secret not in stored


@pytest.mark.parametrize("key", ["api_key", "API_KEY", "OPENAI_API_KEY", "token", "github_token", "db-password"])
def test_credential_names(key: str) -> None:
    assert is_secret(key)


@pytest.mark.parametrize("key", ["api_key_env", "max_tokens", "timeout", "keys", "monkey", "tokenizer", "passthrough"])
def test_settings_about_credentials_are_not_credentials(key: str) -> None:
    assert not is_secret(key)


def test_a_good_config_imports(cli: Cli, tmp_path: Path) -> None:
    text = session(
        '{"engine": "sqlite", "timeout": 5, "model": "openai:m", "model_options": {"temperature": 0}, "approve": true}'
    )

    result = imported(cli, tmp_path, text)

    assert result.code == 0, result
    assert result.err == "t: 1 messages (new snapshot)\n"


def test_a_hostile_key_is_shown_escaped_on_one_line(cli: Cli, tmp_path: Path) -> None:
    result = imported(cli, tmp_path, session('{"\\u001b[2Jevil\\nforged": 1}'))

    assert result.code == 2
    assert result.err.splitlines()[0] == r"doc.md:6:2: error: unknown session-config key '\x1b[2Jevil\nforged'"
    assert "\x1b" not in result.err


def test_positions_survive_a_macro_above_the_block(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "intro.md").write_text("one\ntwo\nthree\n")
    text = "[@intro](domarkx://include?path=intro.md)\n\n" + workspace(
        "resources:\n  - type: local_shell\n    timout: 5"
    )

    result = imported(cli, tmp_path, text)

    assert result.code == 2
    assert result.err.startswith("doc.md:6:5: error: unknown local_shell option 'timout'"), result.err


# -- a run whose model options are wrong makes nothing ---------------------------------------------


def test_run_with_wrong_model_options_creates_no_instance(cli: Cli, tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(session('{"model_options": {"temprature": 0.2}}'))  # no model named: checked when one is chosen

    result = cli("run", str(doc), "--model", "openai:gpt-4o-mini", "-m", "hi")

    assert result.code == 2
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert errors == ["error: unknown model option 'temprature' for provider openai"]
    assert json.loads(cli("instances", "ls", "--json", "-a").out) == []


# -- documents with text but no messages ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        (
            "## User:\n\nhello\n\n## Assistant:\n\nhi\n",
            "doc.md:1:1: warning: the document has no messages: line 1 is '## User:'; did you mean '## user'?",
        ),
        (
            "---\ntitle: x\n---\n\nIntro.\n\n# asistant\n\nhi\n",
            "doc.md:7:1: warning: the document has no messages: line 7 is '# asistant'; did you mean '## assistant'?",
        ),
        (
            "```text\n## user inside a fence\n```\n\n**User:** hello\n",
            "doc.md:5:1: warning: the document has no messages: line 5 is '**User:** hello'; did you mean '## user'?",
        ),
        (
            "Just some notes.\n",
            "doc.md:1:1: warning: the document has text but no '## user' or '## assistant' heading,"
            " so it has no messages",
        ),
    ],
    ids=["colon", "typo-level1", "bold-label", "prose"],
)
def test_text_without_messages_warns_with_the_near_miss(cli: Cli, tmp_path: Path, text: str, warning: str) -> None:
    result = imported(cli, tmp_path, text)

    assert result.code == 0
    assert result.err.splitlines()[0] == warning


@pytest.mark.parametrize("text", ["## user\n\n> hi\n", "```session-config\n{}\n```\n", ""])
def test_no_warning_for_messages_or_config_only(cli: Cli, tmp_path: Path, text: str) -> None:
    result = imported(cli, tmp_path, text)

    assert result.code == 0
    assert "warning" not in result.err


# -- the parts -----------------------------------------------------------------------------------


def test_json_positions_follow_nesting_and_repeats() -> None:
    text = '{"a": {"b": [1, {"c": 2}]}, "d": 0, "d": 1}'

    assert text[_json_offset(text, ("a", "b", 1, "c")) :].startswith('"c"')
    assert _json_offset(text, ("d",)) == text.rindex('"d"')  # JSON keeps the last of repeated keys
    assert text[_json_offset(text, ("a", "missing")) :].startswith('"a"')  # as deep as it goes


def test_yaml_positions_follow_nesting() -> None:
    text = "resources:\n  - type: x\n  - type: y\n    opts:\n      deep: 1\n"

    assert text[_yaml_offset(text, ("resources", 1, "opts", "deep")) :].startswith("deep")
    assert text[_yaml_offset(text, ("resources", 0)) :].startswith("type: x")


def test_the_hook_leaves_other_blocks_alone() -> None:
    block = Block(kind="code", start=0, end=3, text="{}")
    check("something-else", {"anything": 1}, block, "doc.md")  # nothing to say

    with pytest.raises(DocumentError):
        check("session-config", {"engin": 1}, block, "doc.md")


def test_unknown_extension_names_get_a_suggestion() -> None:
    with pytest.raises(UsageError, match=r"unknown plugin 'sqlit' \(did you mean 'sqlite'\?\)"):
        _entrypoints.load(_entrypoints.PLUGINS, "sqlit", what="plugin")
    with pytest.raises(UsageError, match=r"^unknown provider 'zzz'$"):
        _entrypoints.load(_entrypoints.PROVIDERS, "zzz", what="provider")
