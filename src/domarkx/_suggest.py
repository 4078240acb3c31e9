"""Did-you-mean: the nearest known word to a typo, for every error that names something unknown."""

from __future__ import annotations

from collections.abc import Iterable


def nearest(word: str, known: Iterable[str]) -> str | None:
    """The known word closest to ``word`` (case-insensitive), if one is close enough to be a typo."""
    import difflib  # here, not at the top: only error paths need it

    choices = {k.lower(): k for k in known}
    found = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return choices[found[0]] if found else None


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else an empty string: appended to an error message."""
    found = nearest(word, known)
    return f" (did you mean {found!r}?)" if found is not None else ""
