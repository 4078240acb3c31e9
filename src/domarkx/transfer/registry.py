"""A thin OCI distribution client on httpx2: exactly the requests ``push``/``pull``/``login`` make.

Why our own rather than an SDK is in docs/transfer.md (in short: no new
dependency, and we need the HEAD-then-mount-then-upload order, chunked uploads,
streaming digest checks and one-line errors, which we could not get all at once).

The protocol, from the OCI distribution spec:

* ``HEAD /v2/<name>/blobs/<digest>`` before any upload: a blob the repository
  has is never sent again;
* ``POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>`` to reuse a blob
  of another repository of the same registry (201: done; 202: an ordinary
  upload session instead);
* ``POST …/uploads/`` then one ``PUT <location>?digest=`` (monolithic), or
  ``PATCH`` chunks with ``Content-Range`` and a closing ``PUT`` for blobs over
  :data:`CHUNK`;
* manifests by tag or digest, checked against ``Docker-Content-Digest`` and the
  digest asked for;
* auth by challenge: a 401's ``WWW-Authenticate`` says ``Basic`` (send the
  credential) or ``Bearer realm=…,service=…,scope=…`` (get a token there, with
  the credential if we have one, anonymously otherwise; an identity token goes
  through the OAuth2 refresh grant). Tokens are kept per scope for the run.

TLS uses the system's trust store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` override
it); ``ca_file`` adds a private CA. ``insecure`` skips certificate checks and
falls back to plain HTTP for a registry that does not speak TLS. Credentials
never appear in an error; redirects to another host drop the Authorization header.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import ssl
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx2

from domarkx import ids
from domarkx._version import __version__
from domarkx.errors import (
    ContentError,
    DomarkxError,
    ReferenceNotFound,
    RegistryAuthError,
    RegistryConnectionError,
    RegistryError,
    UsageError,
)
from domarkx.transfer import credentials
from domarkx.transfer.artifact import INDEX, MANIFEST, MAX_MANIFEST, Descriptor, Source, Verifier
from domarkx.transfer.credentials import Credential

CHUNK = 64 << 20
"""Blobs larger than this are uploaded in chunks of this size (some proxies cap a request's body)."""
_ACCEPT = ", ".join(
    [
        MANIFEST,
        INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
UNSET: Any = object()
"""No credential given: look up the stored one when the registry asks."""
Body = bytes | Callable[[], Iterable[bytes]] | None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…"`` → (``"bearer"``, {realm, service, …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for match in _PARAM.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
    return scheme.lower(), params


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system trust store (honouring ``SSL_CERT_FILE``), plus ``ca_file`` if given."""
    context = httpx2.create_ssl_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            hint = "give a PEM file of CA certificates"
            raise UsageError(f"cannot use --ca-file {ca_file}: {exc}", hint=hint) from exc
    return context


class RegistryClient:
    """One registry, one connection pool; use it as a context manager."""

    def __init__(
        self,
        registry: str,
        *,
        api_host: str | None = None,
        insecure: bool = False,
        ca_file: Path | None = None,
        credential: Credential | None = UNSET,
        timeout: float = 60.0,
        chunk_size: int | None = None,
    ) -> None:
        self.registry = registry
        self.host = api_host or registry
        self.insecure = insecure
        self.chunk_size = chunk_size or CHUNK
        self.sent = 0
        """Bytes of blob content this client uploaded (for reports and benchmarks)."""
        self._credential = credential
        self._basic: str | None = None
        self._tokens: dict[tuple[str, ...], str] = {}
        self._base: str | None = None
        self._http = httpx2.Client(
            verify=False if insecure else tls_context(ca_file),
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 15.0)),
            headers={"User-Agent": f"domarkx/{__version__}"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API -------------------------------------------------------------------------

    def check(self) -> None:
        """``GET /v2/`` with authentication: that the registry is there and takes our credential."""
        with self._exchange("GET", "/v2/", scopes=()) as response:
            self._expect(response, {200}, "checking the credentials")

    def has_blob(self, repository: str, digest: str) -> bool:
        path = f"/v2/{repository}/blobs/{digest}"
        with self._exchange("HEAD", path, scopes=_pull(repository), follow=True) as response:  # to blob storage
            if response.status_code == 404:
                return False
            self._expect(response, {200}, f"looking for blob {digest}")
            return True

    def push_blob(
        self, repository: str, blob: Descriptor, source: Source | None, *, mount_from: str | None = None
    ) -> str:
        """Make sure the repository has ``blob``: ``"present"``, ``"mounted"`` or ``"uploaded"``.

        ``source`` is None for a blob we only know by descriptor (from an earlier
        push): it must be present or mountable.
        """
        if self.has_blob(repository, blob.digest):
            return "present"
        scopes = _push(repository)
        query = ""
        if mount_from and mount_from != repository:
            scopes, query = scopes + _pull(mount_from), f"?mount={blob.digest}&from={mount_from}"
        with self._exchange("POST", f"/v2/{repository}/blobs/uploads/{query}", scopes=scopes) as response:
            if response.status_code == 201:
                return "mounted"
            self._expect(response, {202}, f"starting the upload of {blob.digest}")
            location = self._location(response)
            minimum = int(response.headers.get("OCI-Chunk-Min-Length", "0") or 0)
        if source is None:
            self._cancel(location, repository)
            raise RegistryError(f"{self.registry}/{repository} no longer has blob {blob.digest} of the last push")
        try:
            self._upload(repository, location, blob, source, max(self.chunk_size, minimum))
        except Exception:  # not on Ctrl-C: stop at once; the registry purges stale uploads itself
            self._cancel(location, repository)
            raise
        return "uploaded"

    def push_manifest(self, repository: str, target: str, raw: bytes, digest: str) -> None:
        """Store an image manifest under a tag, or by its digest alone (``target`` = ``digest``)."""
        headers = {"Content-Type": MANIFEST}
        path = f"/v2/{repository}/manifests/{target}"
        with self._exchange("PUT", path, scopes=_push(repository), body=raw, headers=headers) as response:
            self._expect(response, {201}, "storing the manifest")
            said = response.headers.get("Docker-Content-Digest")
        if said and said != digest:
            raise RegistryError(f"{self.registry} stored the manifest as {said}, not {digest}")

    def get_manifest(self, repository: str, target: str) -> tuple[bytes, str] | None:
        """The manifest at a tag or digest, checked against its digest; None if there is none."""
        headers = {"Accept": _ACCEPT}
        path = f"/v2/{repository}/manifests/{target}"
        with self._exchange("GET", path, scopes=_pull(repository), headers=headers) as response:
            if response.status_code == 404:
                return None
            self._expect(response, {200}, f"reading the manifest {target}")
            with self._translate():
                raw = _read_capped(response, MAX_MANIFEST, f"the manifest of {repository}:{target}")
            said = response.headers.get("Docker-Content-Digest")
        digest = ids.digest_bytes(raw)
        expected = target if target.startswith("sha256:") else said
        if expected and expected != digest:
            raise ContentError(
                f"{self.registry}/{repository}: the manifest {target} does not match its digest (got {digest})",
                hint="the registry or something between it and you altered it; do not use it",
            )
        return raw, digest

    def get_blob(self, repository: str, blob: Descriptor, dest: Path) -> None:
        """Download ``blob`` to ``dest``, hashing as it streams; refuse it unless it matches."""
        where = f"{self.registry}/{repository}"
        path = f"/v2/{repository}/blobs/{blob.digest}"
        identity = {"Accept-Encoding": "identity"}  # the blob's own bytes, never decoded on the way
        with self._exchange("GET", path, scopes=_pull(repository), headers=identity, follow=True) as response:
            self._expect(response, {200}, f"downloading blob {blob.digest}")
            verifier = Verifier(blob, where)
            with self._translate(), dest.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    verifier.update(chunk)
                    out.write(chunk)
        verifier.check()

    # -- uploads -------------------------------------------------------------------------

    def _upload(self, repository: str, location: str, blob: Descriptor, source: Source, chunk: int) -> None:
        scopes = _push(repository)
        octets = {"Content-Type": "application/octet-stream"}
        if blob.size > chunk:
            with source.open() as fh:
                for start in range(0, blob.size, chunk):
                    data = fh.read(min(chunk, blob.size - start))
                    headers = {**octets, "Content-Range": f"{start}-{start + len(data) - 1}"}
                    with self._exchange("PATCH", location, scopes=scopes, body=data, headers=headers) as response:
                        self._expect(response, {202}, f"uploading blob {blob.digest}")
                        location = self._location(response)
                    self.sent += len(data)
            body: Body = b""
        else:
            body = source.chunks  # called again if the request must be sent again
        url = str(httpx2.URL(location).copy_merge_params({"digest": blob.digest}))
        headers = {**octets, "Content-Length": str(0 if body == b"" else blob.size)}
        with self._exchange("PUT", url, scopes=scopes, body=body, headers=headers) as response:
            self._expect(response, {201}, f"uploading blob {blob.digest}")
        if body != b"":
            self.sent += blob.size

    def _cancel(self, location: str, repository: str) -> None:
        """Tell the registry to drop an unfinished upload (the spec asks clients to; failures do not matter)."""
        with contextlib.suppress(Exception), self._exchange("DELETE", location, scopes=_push(repository)):
            pass

    def _location(self, response: httpx2.Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{self.registry} started an upload without saying where (no Location header)")
        return str(response.url.join(location))

    # -- one exchange: scheme, auth, errors ------------------------------------------------

    @contextlib.contextmanager
    def _exchange(
        self,
        method: str,
        path: str,
        *,
        scopes: tuple[str, ...],
        body: Body = None,
        headers: dict[str, str] | None = None,
        follow: bool = False,
    ) -> Iterator[httpx2.Response]:
        """Send one request (again once, authenticated, after a 401) and yield the streamed response."""
        url = path if path.startswith(("http://", "https://")) else self._root() + path
        for attempt in range(2):
            content = body() if callable(body) else body
            request = self._http.build_request(method, url, content=content, headers=headers)
            auth = self._auth_header(scopes)
            if auth:
                request.headers["Authorization"] = auth
            with self._translate():
                response = self._http.send(request, stream=True, follow_redirects=follow)
            if response.status_code == 401:
                challenge = response.headers.get("WWW-Authenticate", "")
                response.close()
                if attempt:
                    raise _needs_login(self.registry, refused=self._credential_now() is not None)
                self._authorize(challenge, scopes)
                continue
            try:
                yield response
            finally:
                response.close()
            return

    def _root(self) -> str:
        """``https://host``, or for an insecure registry whichever of https and http it speaks."""
        if self._base is None:
            self._base = f"https://{self.host}"
            if self.insecure:
                try:
                    self._http.get(f"{self._base}/v2/").close()
                except httpx2.ConnectError as exc:
                    if not _is_tls(exc):
                        raise self._connection_error(exc) from exc
                    self._base = f"http://{self.host}"
        return self._base

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except httpx2.TimeoutException as exc:
            raise RegistryConnectionError(
                f"{self.registry} did not answer in time", hint="check the network, then retry"
            ) from exc
        except httpx2.ConnectError as exc:
            raise self._connection_error(exc) from exc
        except httpx2.TransportError as exc:
            raise RegistryConnectionError(
                f"the connection to {self.registry} broke: {exc or type(exc).__name__}",
                hint="retry: blobs that arrived are not sent again",
            ) from exc

    def _connection_error(self, exc: httpx2.ConnectError) -> RegistryConnectionError:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return RegistryConnectionError(
                f"the TLS certificate of {self.registry} is not trusted: {text}",
                hint="for a private CA pass --ca-file CA.pem (or set SSL_CERT_FILE); --insecure skips the check",
            )
        if _is_tls(exc):
            return RegistryConnectionError(
                f"{self.registry} does not speak HTTPS ({text})",
                hint="for a plain-HTTP registry pass --insecure",
            )
        return RegistryConnectionError(
            f"cannot reach the registry {self.registry}: {text}",
            hint="check the address, and that the registry is running",
        )

    def _expect(self, response: httpx2.Response, ok: set[int], doing: str) -> None:
        if response.status_code in ok:
            return
        with self._translate():
            response.read()
        raise _error(self.registry, response, doing)

    # -- authentication ------------------------------------------------------------------

    def _credential_now(self) -> Credential | None:
        if self._credential is UNSET:
            self._credential = credentials.lookup(self.registry)
        credential: Credential | None = self._credential
        return credential

    def _auth_header(self, scopes: tuple[str, ...]) -> str | None:
        if self._basic:
            return self._basic
        token = self._tokens.get(scopes)
        return f"Bearer {token}" if token else None

    def _authorize(self, challenge: str, scopes: tuple[str, ...]) -> None:
        scheme, params = parse_challenge(challenge)
        credential = self._credential_now()
        if scheme == "basic":
            if credential is None or credential.is_token:
                raise _needs_login(self.registry)
            pair = f"{credential.username}:{credential.secret}".encode()
            self._basic = "Basic " + base64.b64encode(pair).decode()
        elif scheme == "bearer" and params.get("realm"):
            self._tokens[scopes] = self._token(params, scopes, credential)
        else:
            kind = scheme or "none"
            raise RegistryAuthError(f"{self.registry} asks for an authentication domarkx does not speak ({kind})")

    def _token(self, params: dict[str, str], scopes: tuple[str, ...], credential: Credential | None) -> str:
        """A bearer token from the registry's token service for ``scopes`` (and what the challenge asked)."""
        realm = params["realm"]
        if not realm.startswith("https://") and not (self.insecure and realm.startswith("http://")):
            raise RegistryAuthError(f"{self.registry} sends credentials to {realm!r}, which is not https")
        asked = [s for s in params.get("scope", "").split(" ") if s]
        wanted = list(dict.fromkeys([*asked, *scopes]))
        query: list[tuple[str, str | int | float | bool | None]] = [("scope", s) for s in wanted]
        if params.get("service"):
            query.append(("service", params["service"]))
        with self._translate():
            if credential is not None and credential.is_token:
                form = {"grant_type": "refresh_token", "refresh_token": credential.secret, "client_id": "domarkx"}
                form |= {"service": params.get("service", ""), "scope": " ".join(wanted)}
                response = self._http.post(realm, data=form)
            else:
                auth = (credential.username, credential.secret) if credential else None
                response = self._http.get(realm, params=query, auth=auth)
        if response.status_code in (401, 403):
            raise _needs_login(self.registry, refused=credential is not None)
        if response.status_code != 200:
            raise _error(self.registry, response, "getting a token")
        try:
            data = response.json()
            return str(data.get("token") or data["access_token"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryError(f"the token service of {self.registry} answered something that is not a token") from exc


def _pull(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull",)


def _push(repository: str) -> tuple[str, ...]:
    return (f"repository:{repository}:pull,push",)


def _is_tls(exc: Exception) -> bool:
    """Whether a connection failed in the TLS handshake (as opposed to no one listening)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "SSL" in str(exc) or "record layer" in str(exc)


def _needs_login(registry: str, *, refused: bool = False) -> RegistryAuthError:
    what = f"{registry} refused the credentials" if refused else f"{registry} needs credentials"
    return RegistryAuthError(what, hint=f"log in with `domarkx login {registry}` (or docker login), then retry")


def _error(registry: str, response: httpx2.Response, doing: str) -> DomarkxError:
    """A failed response as one line: the registry's own error code and message when it sent them."""
    detail = ""
    try:
        errors = json.loads(response.content).get("errors") or []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        detail = " ".join(str(first.get(k, "")) for k in ("code", "message")).strip()
    except (ValueError, AttributeError, httpx2.ResponseNotRead):
        detail = response.reason_phrase
    detail = re.sub(r"\s+", " ", detail)[:200]
    status = response.status_code
    message = f"{registry} failed {doing}: HTTP {status}" + (f" {detail}" if detail else "")
    if status in (401, 403):
        return RegistryAuthError(message, hint=f"check your access to it; `domarkx login {registry}`")
    if status == 404:
        return ReferenceNotFound(message, hint="check the repository name")
    if status == 429:
        return RegistryError(message, hint="the registry is rate-limiting: wait, then retry")
    return RegistryError(message, hint="retry later; if it persists, the registry's operators can tell why")


def _read_capped(response: httpx2.Response, limit: int, what: str) -> bytes:
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > limit:
            raise ContentError(f"{what} is larger than {limit} bytes", hint="it is not a domarkx session")
    return bytes(data)
