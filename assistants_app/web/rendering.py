"""Model output → safe HTML for the chat page.

Two layers, because either alone has failed somewhere before: markdown-it renders with raw HTML
disabled (so `<script>` in a reply becomes visible text), and nh3 then drops any tag, attribute or
URL scheme outside a small allow-list, whatever the renderer produced. Images from the model are
rendered as links: an <img> would fetch a URL of the model's choosing as soon as the page shows it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

ALLOWED_TAGS = {
    "p", "br", "hr", "blockquote", "pre", "code", "em", "strong", "del", "s",
    "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "a",
    "table", "thead", "tbody", "tr", "th", "td", "span",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def _image_as_link(
    self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    src = escapeHtml(str(token.attrGet("src") or ""))
    return f'<a href="{src}">{escapeHtml(alt)}</a>'


@lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_link)
    return md


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    # Tables get their alignment as `style="text-align:…"`; keep that and nothing else.
    if attr == "style":
        return value if value in {"text-align:left", "text-align:center", "text-align:right"} else None
    if tag == "code" and attr == "class":
        return value if value.startswith("language-") and value[9:].replace("-", "").isalnum() else None
    return value


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener nofollow noreferrer",
        attribute_filter=_attribute_filter,
        strip_comments=True,
    )


def markdown_to_html(text: str) -> str:
    """Render untrusted Markdown (a model's reply, a user's message) to sanitized HTML."""
    return sanitize(_md().render(text))


def content_text(content: list[dict[str, Any]]) -> str:
    """The text of an API message's content parts."""
    return "".join(
        (part.get("text") or {}).get("value", "") for part in content if part.get("type") == "text"
    )
