"""Who gets in, and what a stranger's text can do: the token, origins, Host, CSRF, paths, headers, Markdown."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domarkx.errors import PathEscapeError
from domarkx.ui.markdown import render
from domarkx.ui.security import Gate, workspace_path

from .conftest import Running, make_instance, start_ui, stop_ui


@pytest.fixture(scope="module")
def server(module_home: Path) -> Iterator[tuple[Running, str]]:
    instance = make_instance(module_home, name="guarded")
    running = start_ui(module_home)
    yield running, instance
    stop_ui(running)


def request(
    running: Running,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    cookie: bool = True,
) -> http.client.HTTPResponse:
    sent = {"Host": f"127.0.0.1:{running.port}", **(headers or {})}
    if cookie:
        sent.setdefault("Cookie", f"domarkx-ui-{running.port}={running.token}")
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=30)
    connection.request(method, path, body=data, headers=sent)
    response = connection.getresponse()
    response.read_body = response.read()  # type: ignore[attr-defined]
    connection.close()
    return response


def payload(response: http.client.HTTPResponse) -> Any:
    return json.loads(response.read_body)  # type: ignore[attr-defined]


ORIGIN_JSON = {"Content-Type": "application/json"}


def same_origin(running: Running) -> dict[str, str]:
    return {**ORIGIN_JSON, "Origin": f"http://127.0.0.1:{running.port}"}


# -- the token -------------------------------------------------------------------------


def test_without_the_token_nothing_is_served(server: tuple[Running, str]) -> None:
    running, _ = server
    for path in ("/", "/api/overview", "/static/app.js", f"/?token={'x' * 43}"):
        response = request(running, "GET", path, cookie=False)
        assert response.status == 403, path
        assert "token" in payload(response)["error"]


def test_the_printed_url_sets_a_strict_cookie_and_drops_the_token(server: tuple[Running, str]) -> None:
    running, _ = server
    response = request(running, "GET", f"/?token={running.token}&x=1", cookie=False)
    assert response.status == 303
    assert response.getheader("Location") == "/?x=1"
    cookie = response.getheader("Set-Cookie") or ""
    assert cookie.startswith(f"domarkx-ui-{running.port}={running.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_a_wrong_cookie_or_bearer_is_refused(server: tuple[Running, str]) -> None:
    running, _ = server
    wrong = {"Cookie": f"domarkx-ui-{running.port}={running.token[:-1]}A"}
    assert request(running, "GET", "/api/overview", headers=wrong, cookie=False).status == 403
    bearer = {"Authorization": "Bearer nope"}
    assert request(running, "GET", "/api/overview", headers=bearer, cookie=False).status == 403
    good = {"Authorization": f"Bearer {running.token}"}
    assert request(running, "GET", "/api/overview", headers=good, cookie=False).status == 200


# -- origins and hosts ---------------------------------------------------------------------


def test_other_origins_are_refused_even_with_the_cookie(server: tuple[Running, str]) -> None:
    running, instance = server
    evil = {**ORIGIN_JSON, "Origin": "http://evil.example"}
    assert request(running, "GET", "/api/overview", headers=evil).status == 403
    forged = request(running, "POST", f"/api/instances/{instance}/fork", headers=evil, body={"at": 1})
    assert forged.status == 403
    assert "other origins" in payload(forged)["error"]
    rebound = {"Host": f"evil.example:{running.port}"}
    assert request(running, "GET", "/api/overview", headers=rebound).status == 403


def test_a_change_needs_this_pages_origin_and_json(server: tuple[Running, str]) -> None:
    running, instance = server
    path = f"/api/instances/{instance}/fork"
    no_origin = request(running, "POST", path, headers=ORIGIN_JSON, body={"at": 1})
    assert no_origin.status == 403
    as_form = request(
        running,
        "POST",
        path,
        headers={"Origin": f"http://127.0.0.1:{running.port}", "Content-Type": "text/plain"},
        body=b'{"at": 1}',
    )
    assert as_form.status == 415
    made = request(running, "POST", path, headers=same_origin(running), body={"at": 1, "name": "via-page"})
    assert made.status == 200, payload(made)
    by_script = request(
        running,
        "POST",
        path,
        headers={**ORIGIN_JSON, "Authorization": f"Bearer {running.token}"},
        body={"at": 1, "name": "via-script"},
        cookie=False,
    )
    assert by_script.status == 200, payload(by_script)
    names = {i["name"] for i in payload(request(running, "GET", "/api/overview"))["instances"]}
    assert {"via-page", "via-script"} <= names


def test_every_answer_carries_the_strict_headers(server: tuple[Running, str]) -> None:
    running, _ = server
    for path in ("/", "/static/app.js", "/api/overview", "/api/nothing"):
        response = request(running, "GET", path)
        csp = response.getheader("Content-Security-Policy") or ""
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "script-src 'self'" in csp and "unsafe" not in csp
        assert response.getheader("X-Content-Type-Options") == "nosniff"


def test_static_files_are_a_fixed_list(server: tuple[Running, str]) -> None:
    running, _ = server
    assert request(running, "GET", "/static/app.js").status == 200
    for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/server.py", "/static/..%2fapi.py"):
        assert request(running, "GET", path).status == 404, path


# -- the file browser stays in the workspace -----------------------------------------------


@pytest.mark.parametrize("path", ["../", "..", "docs/../../x", "/etc/passwd", "a//b", "./notes.txt", "x\\x00y"])
def test_the_file_browser_refuses_paths_leaving_the_workspace(server: tuple[Running, str], path: str) -> None:
    running, instance = server
    from urllib.parse import quote

    for endpoint in ("files", "file", "raw"):
        response = request(running, "GET", f"/api/instances/{instance}/{endpoint}?path={quote(path)}")
        assert response.status == 400, (endpoint, path)
        assert "leaves the workspace" in payload(response)["error"]


def test_read_only_refuses_every_change(module_home: Path, server: tuple[Running, str]) -> None:
    _, instance = server
    running = start_ui(module_home, "--read-only")
    try:
        response = request(
            running, "POST", f"/api/instances/{instance}/fork", headers=same_origin(running), body={"at": 1}
        )
        assert response.status == 403 and "read-only" in payload(response)["error"]
        about = payload(request(running, "GET", "/api/about"))
        assert about["read_only"] is True
    finally:
        stop_ui(running)


# -- units ----------------------------------------------------------------------------------


def test_gate_host_origin_and_cookie_names() -> None:
    gate = Gate("t" * 43, 8707)
    cookie = {"host": "localhost:8707", "cookie": f"other=1; domarkx-ui-8707={'t' * 43}"}
    assert gate.check("GET", "/api/overview", "", cookie).status == 0
    assert gate.check("GET", "/api/overview", "", {**cookie, "host": "localhost:8708"}).status == 403
    assert gate.check("GET", "/api/overview", "", {**cookie, "origin": "http://localhost:8707"}).status == 0
    assert gate.check("GET", "/api/overview", "", {**cookie, "origin": "null"}).status == 403
    assert gate.check("GET", "/api/x", f"token={'t' * 43}", {"host": "localhost:8707"}).status == 403
    # the login redirect goes to this server's page only, never to a path that reads as another host
    assert gate.check("GET", "//evil.example/", f"token={'t' * 43}", {"host": "localhost:8707"}).status == 403
    assert gate.check("GET", "/", f"token={'t' * 43}", {"host": "localhost:8707"}).redirect == "/"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b""),
        ("notes.txt", b"notes.txt"),
        ("docs/index.md", b"docs/index.md"),
        ("caf\\xe9.txt", b"caf\xe9.txt"),
        ("line\\nbreak", b"line\nbreak"),
        ("..hidden", b"..hidden"),
    ],
)
def test_workspace_paths_that_stay_inside(text: str, expected: bytes) -> None:
    assert workspace_path(text) == expected


@pytest.mark.parametrize("text", ["..", "../x", "a/../../b", "/abs", "a/", "a//b", ".", "a/./b", "x\\x00y"])
def test_workspace_paths_that_leave(text: str) -> None:
    with pytest.raises(PathEscapeError):
        workspace_path(text)


HOSTILE = """\
<script>window.pwned = 1</script>

<img src=x onerror="window.pwned = 2">

[click](javascript:window.pwned=3) [data](data:text/html,<script>x</script>) <javascript:alert(1)>

![tracker](https://tracker.example/p.png) [fine](https://example.org/a?b=1)

```js" onmouseover="window.pwned=4
code <b>not bold</b>
```
"""


def test_hostile_markdown_renders_inert() -> None:
    html = render(HOSTILE)
    assert "<script" not in html and "<img" not in html
    assert "onerror=" not in html.replace("onerror=&quot;", "")
    assert 'href="javascript' not in html.lower() and 'href="data' not in html.lower()
    assert 'src="' not in html  # no image is ever loaded
    assert 'href="https://example.org/a?b=1" rel="noopener noreferrer nofollow"' in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html
    assert 'class="language-js&quot;"' in html
