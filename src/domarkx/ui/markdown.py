"""Markdown that a model or a stranger's document wrote, as HTML that cannot run or fetch anything.

The browser inserts this HTML as it is, so it is made safe here, on the
server, by construction rather than by cleaning afterwards:

* raw HTML is off: ``<script>`` or ``<img onerror=…>`` in a message is shown as text;
* a link keeps its ``href`` only for ``http``, ``https`` and ``mailto`` (anything
  else — ``javascript:``, ``data:``, a relative path into this server — stays
  plain text), and opens in a new tab without a referrer;
* an image is never loaded: it becomes a link to its address (or to nothing),
  so a document cannot make the browser call home;
* attribute values are escaped by markdown-it (a fence's info string included).

The page's Content-Security-Policy is the second wall (docs/ui.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

_SAFE_SCHEMES = ("http://", "https://", "mailto:")


def safe_url(url: str) -> bool:
    """Whether a link may keep its address (scheme checked after markdown-it's normalisation)."""
    return url.strip().lower().startswith(_SAFE_SCHEMES)


def _link_open(renderer: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    token.attrSet("rel", "noopener noreferrer nofollow")
    token.attrSet("target", "_blank")
    result: str = renderer.renderToken(tokens, idx, options, env)
    return result


def _image(renderer: Any, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """An image as a labelled link to where it lives: shown only if the reader chooses to open it."""
    token = tokens[idx]
    alt = renderer.renderInlineAsText(token.children or [], options, env)
    src = str(token.attrGet("src") or "")
    label = escapeHtml(f"image: {alt}" if alt else "image")
    if not safe_url(src) or src.lower().startswith("mailto:"):
        return f'<span class="md-image">[{label}]</span>'
    href = escapeHtml(src)
    return f'<a class="md-image" href="{href}" rel="noopener noreferrer nofollow" target="_blank">[{label}]</a>'


@cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = safe_url  # type: ignore[method-assign]  # markdown-it's documented hook
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("image", _image)
    return md


def render(text: str) -> str:
    """``text`` (CommonMark) as HTML safe to insert into the page."""
    html: str = _parser().render(text)
    return html
