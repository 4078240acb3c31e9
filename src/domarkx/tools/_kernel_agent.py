"""The part of domarkx that runs inside a kernel (confined, and as hostile as the document).

It is imported by the kernel process only, never by domarkx itself, and
imports nothing from domarkx: what it sends back is data (JSON and files in the
outbox) that domarkx checks, never objects domarkx would load.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Start ipykernel (arguments as for ``ipykernel_launcher``)."""
    from ipykernel.kernelapp import IPKernelApp

    # ipykernel_launcher removes the script's directory from sys.path; `-c` put the cwd there.
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    IPKernelApp.launch_instance(argv=sys.argv[1:])
