"""Names people give: snapshot tags and instance names, never to be mistaken for ids.

Wherever a reference is accepted, an id prefix of 4+ hex characters is one
too; a name made only of hex digits could shadow an id (or be shadowed by one).
So both kinds of name must contain a character that is not a hex digit, in
either case, and cannot start with ``sha256:``.
"""

from __future__ import annotations

from domarkx import ids
from domarkx.errors import UsageError

_HEX_ANY_CASE = frozenset("0123456789abcdefABCDEF")


def _looks_like_id(name: str) -> bool:
    return all(c in _HEX_ANY_CASE for c in name) or name.startswith(ids.PREFIX)


def validate_tag(tag: str) -> None:
    """Tags: letters, digits and ``._-:/``, at most 128, with a non-hex character."""
    ok = bool(tag) and len(tag) <= 128 and all(c.isalnum() or c in "._-:/" for c in tag)
    if not ok or _looks_like_id(tag):
        raise UsageError(
            f"invalid tag {tag!r}",
            hint="use letters, digits and . _ - : / and include a non-hex character (e.g. v1, demo)",
        )


def validate_instance_name(name: str) -> None:
    """Instance names: letters, digits and ``._-``, not starting with ``.`` or ``-``, with a non-hex character."""
    ok = bool(name) and len(name) <= 128 and all(c.isalnum() or c in "._-" for c in name) and name[0] not in ".-"
    if not ok or _looks_like_id(name):
        raise UsageError(
            f"invalid instance name {name!r}",
            hint="use letters, digits, '.', '_' and '-', including a non-hex character (e.g. try1)",
        )
