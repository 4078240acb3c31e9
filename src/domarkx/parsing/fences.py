"""Fenced-code info strings: ``bash name=list_files.sh`` → language, attributes, flags."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass(frozen=True)
class InfoString:
    """The parts of a fence's info string.

    ``lang`` is the first word; ``key=value`` words are attributes (values may be
    quoted); other words are flags such as ``msg-metadata`` or ``setup-script``.
    """

    lang: str | None
    attrs: dict[str, str] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    def names(self, word: str) -> bool:
        """Whether the fence is marked ``word``, as its language or as a flag."""
        return self.lang == word or word in self.flags


def parse_info(info: str) -> InfoString:
    """Split an info string; never fails (an unbalanced quote falls back to spaces)."""
    info = info.strip()
    if not info:
        return InfoString(lang=None)
    try:
        words = shlex.split(info, posix=True)
    except ValueError:
        words = info.split()
    lang, rest = words[0], words[1:]
    attrs: dict[str, str] = {}
    flags: list[str] = []
    for word in rest:
        key, sep, value = word.partition("=")
        if sep and key:
            attrs[key] = value
        else:
            flags.append(word)
    return InfoString(lang=lang, attrs=attrs, flags=tuple(flags))


def format_info(lang: str | None, attrs: dict[str, str], flags: list[str] | tuple[str, ...]) -> str:
    """The inverse of :func:`parse_info`, used when rendering new messages."""
    words = [lang or ""]
    words += list(flags)
    words += [f"{k}={shlex.quote(v)}" for k, v in attrs.items()]
    return " ".join(w for w in words if w)
