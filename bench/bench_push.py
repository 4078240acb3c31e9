"""``domarkx push`` of a 10,000-file workspace, as a ratio to the oras SDK pushing one tarball of the files.

    pip install -e '.[bench]'       # oras, the baseline
    python bench/bench_push.py [--files 10000] [--repeat 5] [--json]

Starts Debian's ``docker-registry`` (the CNCF distribution registry) on
127.0.0.1 behind a byte-counting relay, and makes a ``local_shell`` instance
whose workspace holds ``--files`` small files (100 per directory, committed
as the instance's head). Then, ``--repeat`` times, interleaved:

* ``domarkx``: push the instance to a new repository (``domarkx.transfer.remote.push``,
  in this process: the plugin packs the versions, blobs are HEADed, uploaded, the
  manifest put);
* ``oras``: ``oras.client.OrasClient.push`` of the work tree to a new repository:
  the SDK makes one ``.tar.gz`` of the files and uploads it (both sides start from
  files on disk and end with them in the registry).

Target: domarkx ≤ 1.5× oras. Then one file is changed and the instance pushed
again to the same tag: the bytes the registry receives (requests, headers and
bodies, counted by the relay) must be < 1% of what the first push sent.
Prints a table and, with ``--json``, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved, median, populate, print_rows, row

TARGET = 1.5
BYTES_TARGET = 0.01


class Relay:
    """A TCP relay in front of the registry that counts the bytes clients send it."""

    def __init__(self, port: int) -> None:
        self.port, self.sent = port, 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def take(self) -> int:
        with self._lock:
            sent, self.sent = self.sent, 0
        return sent

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        with suppress(OSError):
            while data := source.recv(1 << 16):
                if counted:
                    with self._lock:
                        self.sent += len(data)
                sink.sendall(data)
        for sock in (source, sink):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@contextmanager
def registry(root: Path) -> Iterator[int]:
    """A plain-HTTP registry with filesystem storage under ``root``; yields its port."""
    binary = os.environ.get("DOMARKX_REGISTRY_BIN") or shutil.which("docker-registry")
    if binary is None:
        raise SystemExit("docker-registry is not installed (.ci/registry.sh start installs it)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'storage'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}', secret: bench}}\n"
    )
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            with suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
                break
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def session(home: Path, files: int) -> tuple[str, Path]:
    """A local_shell instance whose head version holds ``files`` files: its id and its work tree."""
    from domarkx.data.store import Store
    from domarkx.session.instance import InstanceManager

    os.environ["DOMARKX_HOME"] = str(home)
    from domarkx.session.outofband import exec_code

    with Store(home) as store:
        manager = InstanceManager(store)
        snapshot = manager.snapshots.build(b"## user\n\n> push me\n", path="bench.md", base_dir=home)
        manager.snapshots.save(snapshot)
        instance = manager.create(snapshot)
        resource = manager.workspaces.open(instance.workspace_id).resources[0]
        plugin = manager.workspaces.plugin(resource.type)
        work: Path = plugin.work_dir(resource.id)  # type: ignore[attr-defined]
        populate(work, files)
        exec_code(manager, instance.id, "true")  # commits the files as the head version
        return instance.id, work


def measure(files: int, repeat: int) -> dict[str, Any]:
    import oras.client

    from domarkx.data.store import Store
    from domarkx.transfer.remote import Connection, push

    with tempfile.TemporaryDirectory() as tmp, registry(Path(tmp)) as port:
        base = Path(tmp)
        relay = Relay(port)
        instance, work = session(base / "home", files)
        oras_client = oras.client.OrasClient(hostname=relay.address, insecure=True)
        rounds = iter(range(10**6))

        def ours() -> None:
            with Store(base / "home") as store:  # fresh: no earlier push to build on, like a first push
                push(store, instance, f"{relay.address}/ours/r{next(rounds)}:v1", Connection(insecure=True), fresh=True)

        def theirs() -> None:
            target = f"{relay.address}/oras/r{next(rounds)}:v1"
            oras_client.push(target=target, files=[str(work)], disable_path_validation=True, quiet=True)

        times = interleaved({"domarkx": ours, "oras": theirs}, repeat)
        return {"times": times, **second_push(base, relay, instance)}


def second_push(base: Path, relay: Relay, instance: str) -> dict[str, Any]:
    """Bytes the registry receives for a first push, and for a second after one changed file."""
    from domarkx.data.store import Store
    from domarkx.session.instance import InstanceManager
    from domarkx.session.outofband import exec_code
    from domarkx.transfer.remote import Connection, push

    target = f"{relay.address}/ours/delta:v1"
    with Store(base / "home") as store:
        relay.take()
        first = push(store, instance, target, Connection(insecure=True), fresh=True)
        first_bytes = relay.take()
        exec_code(InstanceManager(store), instance, "echo 'CHANGED = 1' >> pkg042/module_04242.py")
        start = time.perf_counter()
        second = push(store, instance, target, Connection(insecure=True))
        seconds = time.perf_counter() - start
        second_bytes = relay.take()
    return {
        "first_bytes": first_bytes,
        "second_bytes": second_bytes,
        "second_s": seconds,
        "artifact": first.size,
        "second_blobs": second.blobs,
        "second_content": second.uploaded,
    }


def figures(quick: bool = False, files: int | None = None, repeat: int | None = None) -> dict[str, Any]:
    files = files or (4300 if quick else 10_000)
    result = measure(files, repeat or (1 if quick else 5))
    ours, theirs = median(result["times"]["domarkx"]), median(result["times"]["oras"])
    share = result["second_bytes"] / result["first_bytes"]
    sent = f"{result['second_bytes']:,} of {result['first_bytes']:,} bytes"
    bytes_row = row(f"second push after one change: {sent}", result["second_s"])
    bytes_row.update(ratio=share, target=f"< {BYTES_TARGET:.0%} of the bytes", baseline="first push (bytes)")
    bytes_row["pass"] = share < BYTES_TARGET
    rows = [
        row(
            f"push, {files:,}-file workspace ({result['artifact']:,} B)",
            ours,
            baseline="oras-py push of the files as one .tar.gz",
            baseline_s=theirs,
            max_ratio=TARGET,
        ),
        bytes_row,
    ]
    return {"area": "transfer (push to a local registry)", "rows": rows, "raw": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = figures(files=args.files, repeat=args.repeat)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "raw"} | {"raw": result["raw"]}, default=str))
    else:
        print_rows(result["area"], result["rows"])


if __name__ == "__main__":
    main()
