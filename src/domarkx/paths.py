"""File names are bytes: how they are shown, and how they travel through text.

A workspace file name may be any bytes but ``/`` and NUL: a Latin-1 ``café.txt``
from an old zip, a name with a newline, a U+2028. Internally paths are ``bytes``
(git with ``-z``, ``os.fsencode``); wherever a path must appear in text (a tool
result, a diff, JSON, an export, a terminal) it is written with :func:`escape`
and read back with :func:`unescape`, which round-trip for every byte string.

The escaping (docs/format.md, "File names"):

* valid UTF-8 is kept as it is, except the characters below;
* ``\\`` becomes ``\\\\``;
* ASCII control characters become ``\\n``, ``\\t``, ``\\r`` or ``\\x00``–``\\x1f``, ``\\x7f``;
* C1 controls and the line separators U+2028, U+2029 become ``\\u0080``…;
* each byte that is not part of valid UTF-8 becomes ``\\x80``–``\\xff`` (lower-case hex),
  which no character is written as, so the two never meet.

So an ordinary name reads as itself, and no escaped name contains a line break.
"""

from __future__ import annotations

import os
import re

_SIMPLE = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_SPECIAL = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029\udc80-\udcff]")
_ESCAPE = re.compile(r"\\(\\|n|t|r|x[0-9a-f]{2}|u[0-9a-f]{4})")


def _one(match: re.Match[str]) -> str:
    char = match.group()
    simple = _SIMPLE.get(char)
    if simple is not None:
        return simple
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape carries it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def escape(path: bytes | str) -> str:
    """``path`` as one line of text that :func:`unescape` turns back into the same bytes.

    A ``str`` must be a file system name as :func:`os.fsdecode` gives it.
    """
    text = path.decode("utf-8", "surrogateescape") if isinstance(path, bytes) else path
    return _SPECIAL.sub(_one, text)


def unescape(text: str) -> bytes:
    """The bytes of a path written by :func:`escape`."""
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(text):
        out += text[pos : match.start()].encode("utf-8", "surrogateescape")
        token = match.group(1)
        if token[0] == "x":
            out.append(int(token[1:], 16))  # an ASCII control, or a byte that was not UTF-8
        elif token[0] == "u":
            out += chr(int(token[1:], 16)).encode()
        else:
            out += {"\\": b"\\", "n": b"\n", "t": b"\t", "r": b"\r"}[token]
        pos = match.end()
    out += text[pos:].encode("utf-8", "surrogateescape")
    return bytes(out)


def fs(path: bytes | str) -> bytes:
    """A path as the bytes the operating system uses."""
    return path if isinstance(path, bytes) else os.fsencode(path)
