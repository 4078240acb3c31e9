"""An MCP server in the standard library alone, speaking the handshake-era protocol line by line.

It starts in milliseconds (the SDK takes seconds to import on a busy
machine) and runs under the system's ``python3`` inside domarkx's sandbox,
where no virtualenv is visible. ``probe`` reports what the server can reach
(a host file, the network, its environment, its working directory); notes
are state that lives in the server; ``fail`` answers with an error result.
"""

import json
import os
import socket
import sys


def tool(name, description, **properties):
    schema = {
        "type": "object",
        "properties": {k: {"type": v} for k, v in properties.items()},
        "required": list(properties),
    }
    return {"name": name, "description": description, "inputSchema": schema}


TOOLS = [
    tool("probe", "What this server can reach.", path="string", port="integer"),
    tool("add_note", "Remember a note.", text="string"),
    tool("list_notes", "Every note."),
    tool("fail", "Always fails.", reason="string"),
]
NOTES = []


def attempt(action):
    try:
        action()
    except OSError as exc:
        return type(exc).__name__
    return "yes"


def probe(path, port):
    def write():
        with open("made.txt", "w") as fh:
            fh.write("made inside\n")

    return {
        "env": sorted(os.environ),
        "home": os.environ.get("HOME"),
        "cwd": os.getcwd(),
        "read": attempt(lambda: open(path).read()),
        "net": attempt(lambda: socket.create_connection(("127.0.0.1", port), timeout=5).close()),
        "write": attempt(write),
    }


def answer(request):
    method, params = request.get("method"), request.get("params") or {}
    if method == "initialize":
        info = {"name": "probe", "version": "0"}
        return {"protocolVersion": params["protocolVersion"], "capabilities": {"tools": {}}, "serverInfo": info}
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        return call(params["name"], params.get("arguments") or {})
    return None


def call(name, arguments):
    if name == "probe":
        text, failed = json.dumps(probe(**arguments), sort_keys=True), False
    elif name == "add_note":
        NOTES.append(arguments["text"])
        text, failed = f"{len(NOTES)} note(s)", False
    elif name == "list_notes":
        text, failed = "\n".join(NOTES) or "(no notes)", False
    else:
        text, failed = f"failed: {arguments.get('reason')}", True
    return {"content": [{"type": "text", "text": text}], "isError": failed}


for line in sys.stdin:
    request = json.loads(line)
    if "id" not in request:
        continue  # a notification
    result = answer(request)
    reply = {"jsonrpc": "2.0", "id": request["id"]}
    if result is None:
        reply["error"] = {"code": -32601, "message": "method not found"}
    else:
        reply["result"] = result
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
