"""``domarkx save|load`` (bundles) and ``push|pull|login|logout`` (OCI registries)."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from domarkx import ids
from domarkx.cli._common import emit_json, human_size, json_option, open_store, trust_option
from domarkx.errors import UsageError

if TYPE_CHECKING:
    from domarkx.transfer import Loaded
    from domarkx.transfer.remote import Connection


def _say(text: str) -> None:
    click.secho(f"· {text}", err=True)


@contextlib.contextmanager
def _output(output: str | None) -> Iterator[IO[bytes]]:
    """``output`` written atomically (temp file + rename), or stdout when it is not a terminal."""
    if output is None or output == "-":
        if sys.stdout.isatty():
            raise UsageError("a bundle is binary: not writing it to a terminal", hint="pass -o FILE.tar")
        yield sys.stdout.buffer
        return
    target = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command("save")
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.option("-o", "--output", metavar="FILE", help="Write the bundle to FILE (default: stdout, if not a terminal).")
def save_cmd(refs: tuple[str, ...], output: str | None) -> None:
    """Write snapshots or instances (whole history, every workspace version) to a bundle.

    REF is a snapshot (id, prefix or tag) or an instance (id, prefix or name).
    The bundle is an OCI image layout in a tar; `domarkx load` takes it into
    another home with the same ids, and `fork --at N` works there for every N.

    \b
    Examples:
      domarkx save try1 -o try1.tar
      domarkx save demo try1 try2 > sessions.tar
    """
    from domarkx import transfer

    with open_store() as store, _output(output) as out:
        roots = transfer.save(store, refs, out)
    for root in roots:
        _say(f"saved {root.kind} {_short(root.kind, root.id)}")


@click.command("load")
@click.argument("file", metavar="FILE.tar")
@trust_option
@json_option
def load_cmd(file: str, as_json: bool) -> None:
    """Check a bundle whole, then add its sessions to this home (`-` reads stdin).

    Nothing is added unless everything checks out (every blob against its
    digest, every id against its content, every instance's powers against
    your trust, as `run` checks them); what is already here is skipped, so
    loading twice changes nothing. Prints the id of each session named when
    the bundle was saved.

    \b
    Examples:
      domarkx load session.tar
      domarkx load --trust my-own-unconfined-session.tar
      curl -s https://example.org/session.tar | domarkx load -
    """
    from domarkx import transfer

    with open_store() as store, _input(file) as source:
        loaded = transfer.load(store, source, where=f"bundle {file}", again=f"domarkx load --trust {shlex.quote(file)}")
    _report(loaded, as_json)


@contextlib.contextmanager
def _input(file: str) -> Iterator[IO[bytes]]:
    if file == "-":
        yield sys.stdin.buffer
        return
    try:
        fh = open(file, "rb")  # noqa: SIM115 - closed below, after the load
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {file}", hint="pass the path of a bundle written by `domarkx save`") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{file} is a directory, not a bundle") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror}") from exc
    with fh:
        yield fh


def _report(loaded: Loaded, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "roots": [root.model_dump() for root in loaded.roots],
                "new_snapshots": loaded.snapshots,
                "new_instances": loaded.instances,
                "notes": loaded.notes,
            }
        )
        return
    new = set(loaded.snapshots) | set(loaded.instances)
    for root in loaded.roots:
        state = "loaded" if root.id in new else "already here:"
        _say(f"{state} {root.kind} {_short(root.kind, root.id)}")
    for note in loaded.notes:
        _say(note)
    for root in loaded.roots:
        click.echo(root.id)


def _short(kind: str, found: str) -> str:
    return ids.short(found) if kind == "snapshot" else found[:12]


# -- registries ------------------------------------------------------------------------------

insecure_option = click.option(
    "--insecure",
    is_flag=True,
    help="Skip TLS certificate checks; plain HTTP if the registry does not speak TLS (a local registry).",
)
ca_file_option = click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="PEM",
    help="Also trust the CA certificates in PEM (a private registry); SSL_CERT_FILE replaces the system's.",
)


def _connection(insecure: bool, ca_file: Path | None) -> Connection:
    from domarkx.transfer.remote import Connection

    return Connection(insecure=insecure, ca_file=ca_file)


@click.command("push")
@click.argument("ref", metavar="REF")
@click.argument("target", metavar="REGISTRY/REPO[:TAG]")
@click.option("--fresh", is_flag=True, help="Reuse no earlier push: send only what the session links now.")
@insecure_option
@ca_file_option
@json_option
def push_cmd(ref: str, target: str, fresh: bool, insecure: bool, ca_file: Path | None, as_json: bool) -> None:
    """Push a snapshot or an instance, with its workspace, to an OCI registry.

    Only blobs the repository lacks are sent: an earlier push of the session
    (at TARGET, or elsewhere on the registry) is reused, and a second push
    after a small change sends little more than the change (--fresh: start
    over, e.g. after many pushes stacked layers of old heads). Credentials come
    from `domarkx login` or `docker login` (~/.docker/config.json and its
    credential helpers). Prints REGISTRY/REPO@DIGEST.

    \b
    Examples:
      domarkx push try1 ghcr.io/me/sessions:try1
      domarkx push demo localhost:5000/demo --insecure
    """
    from domarkx.transfer.remote import push

    with open_store() as store:
        pushed = push(store, ref, target, _connection(insecure, ca_file), fresh=fresh)
    if as_json:
        emit_json(vars(pushed))
        return
    counts = ", ".join(f"{n} {how}" for how, n in sorted(pushed.blobs.items()))
    _say(f"pushed {pushed.reference}: {counts}; {human_size(pushed.uploaded)} sent of {human_size(pushed.size)}")
    click.echo(f"{pushed.reference.rsplit(':', 1)[0]}@{pushed.digest}")


@click.command("pull")
@click.argument("source", metavar="REGISTRY/REPO[:TAG|@DIGEST]")
@insecure_option
@ca_file_option
@trust_option
@json_option
def pull_cmd(source: str, insecure: bool, ca_file: Path | None, as_json: bool) -> None:
    """Pull sessions pushed with `domarkx push` into this home, workspaces included.

    Every blob is checked against its digest and nothing is stored unless all
    of it is good; an instance whose document asks for a power you have not
    trusted is refused, as `run` refuses it (--trust: allow it). A snapshot
    pulled by tag is tagged here with the reference (like `docker pull`).
    Prints the id of each session pulled; then `run`, `fork` and `export`
    work on it as on one made here.

    \b
    Examples:
      domarkx pull ghcr.io/me/sessions:demo
      domarkx pull localhost:5000/sessions@sha256:4f1c… --insecure
    """
    from domarkx.transfer.remote import pull

    with open_store() as store:
        again = shlex.join(["domarkx", "pull", "--trust", source] + (["--insecure"] if insecure else []))
        loaded = pull(store, source, _connection(insecure, ca_file), again=again)
    _report(loaded, as_json)


@click.command("login")
@click.argument("registry", metavar="REGISTRY")
@click.option("-u", "--username", metavar="USER", help="The user name (asked for if missing).")
@click.option("--password-stdin", is_flag=True, help="Read the password (or token) from stdin.")
@insecure_option
@ca_file_option
def login_cmd(registry: str, username: str | None, password_stdin: bool, insecure: bool, ca_file: Path | None) -> None:
    """Check a credential against REGISTRY and keep it where docker keeps its own.

    That is ~/.docker/config.json (or $DOCKER_CONFIG), through its credential
    helper if it names one; never the domarkx store. The password is never
    printed; pass it on stdin in scripts, never as an argument.

    \b
    Examples:
      domarkx login ghcr.io -u me
      echo "$TOKEN" | domarkx login ghcr.io -u me --password-stdin
    """
    from domarkx.transfer.remote import login

    if username is None:
        username = click.prompt("Username", err=True)
    if password_stdin:
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    else:
        password = click.prompt("Password", hide_input=True, err=True)
    if not username or not password:
        raise UsageError("a user name and a password are needed", hint="pass -u USER and the password on stdin")
    where = login(registry, username, password, _connection(insecure, ca_file))
    _say(f"logged in to {registry}; the credential is kept in {where}")


@click.command("logout")
@click.argument("registry", metavar="REGISTRY")
def logout_cmd(registry: str) -> None:
    """Forget the credential kept for REGISTRY.

    \b
    Example:
      domarkx logout ghcr.io
    """
    from domarkx.transfer.remote import logout

    if logout(registry):
        _say(f"logged out of {registry}")
    else:
        _say(f"no credential was kept for {registry}")
