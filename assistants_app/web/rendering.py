"""Model output → safe HTML for the chat page.

Two layers, because either alone has failed somewhere before: markdown-it renders with raw HTML
disabled (so `<script>` in a reply becomes visible text), and nh3 then drops any tag, attribute or
URL scheme outside a small allow-list, whatever the renderer produced. Images from the model are
rendered as links: an <img> would fetch a URL of the model's choosing as soon as the page shows it.

Code blocks are highlighted here, on the server, with Pygments (class names only, styled by app.css)
and get a language label and a copy button; citation markers (【n†file】) become numbered chips.
While a reply streams, `LiveMarkdown` renders it a block at a time (web/consumers.py bounds the
rate); the final render is `markdown_to_html`, the same as the history view's.

A code block that is still growing is rendered again at every partial render, and highlighting it
whole each time (Pygments, then sanitizing its spans) cost ~15 ms a render of a 1,000-character
Python block on these machines (`bench/bench_render.py`): every streaming code block kept ~15% of a
core busy, more as it grew. So a growing block is highlighted up to its last complete line, and that
highlight is reused, with the lines after it as plain text, until they are more than a quarter of it
(at least STREAM_PLAIN_CHARS): the block is highlighted O(log n) times instead of at every render,
its newest lines show plain for a moment, and blocks that are final are highlighted whole. Lexers
are looked up once per language: Pygments' lookup alone was ~1 ms per block.
"""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

ALLOWED_TAGS = {
    "p", "br", "hr", "blockquote", "pre", "code", "em", "strong", "del", "s",
    "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "a",
    "table", "thead", "tbody", "tr", "th", "td", "span", "div", "button",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "class", "aria-label"},
    "code": {"class"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
    "span": {"class"},
    "div": {"class"},
    "button": {"type", "class", "aria-label"},
}
URL_SCHEMES = {"http", "https", "mailto"}
# Classes the renderer itself writes; anything else is dropped (the model can't add attributes:
# raw HTML is off, and this filter is the second layer).
_CLASSES = {
    "span": {*STANDARD_TYPES.values(), "code-lang", "cite-chip"} - {""},
    "div": {"code-block", "code-head"},
    "button": {"code-copy"},
    "a": {"cite-chip"},
}
MAX_HIGHLIGHT_CHARS = 50_000
# Plain text a growing code block may end with before its highlight is redone (see the docstring).
STREAM_PLAIN_CHARS = 64
# Markdown (without code blocks) short enough to render on the event loop: ~0.25 ms on these
# machines, about what the trip to a thread it saves costs (web/consumers.py).
CHEAP_RENDER_CHARS = 4000
_LANG = re.compile(r"[A-Za-z0-9_+#.-]{1,32}")
_FORMATTER = HtmlFormatter(nowrap=True)
# 【4:0†notes.txt】, the markers file search tells the model to write.
_CITATION = re.compile(r"【([^】†\n]{0,40})†([^】\n]{1,200})】")


def _image_as_link(
    self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    src = escapeHtml(str(token.attrGet("src") or ""))
    return f'<a href="{src}">{escapeHtml(alt)}</a>'


@lru_cache(maxsize=256)
def _lexer(lang: str) -> Lexer | None:
    try:
        return get_lexer_by_name(lang)
    except ClassNotFound:
        return None


def _growing(code: str, lexer: Lexer, env: EnvType) -> str:
    """A streaming block: its last highlight, then the rest as plain text. The highlight is
    sanitized once, when it is made, and stands in the render as a marker (`LiveMarkdown.render`
    puts it back after sanitizing the rest), so the block's spans are not sanitized again at every
    render either: that was most of what was left of its cost."""
    slots: list[str] = env["growing_slots"]
    cache: dict[int, tuple[str, str]] = env["growing_code"]
    slot = len(slots)
    prefix, html = cache.get(slot, ("", ""))
    rest = code[len(prefix) :]
    if not prefix or not code.startswith(prefix) or len(rest) > max(STREAM_PLAIN_CHARS, len(prefix) // 4):
        cut = code.rfind("\n") + 1  # complete lines only: a line's last token may still grow
        prefix, rest = code[:cut], code[cut:]
        html = sanitize(highlight(prefix, lexer, _FORMATTER)) if prefix else ""
        cache[slot] = (prefix, html)
    slots.append(html)
    return f"{env['growing_nonce']}{slot}x{escapeHtml(rest)}"


def _fence(self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    info = (token.info or "").strip().split(" ", 1)[0]
    lang = info if _LANG.fullmatch(info) else ""
    code = token.content
    body = escapeHtml(code)
    lexer = _lexer(lang.lower()) if lang and len(code) <= MAX_HIGHLIGHT_CHARS else None
    if lexer is not None:
        body = _growing(code, lexer, env) if env.get("streaming") else highlight(code, lexer, _FORMATTER)
    cls = f' class="language-{escapeHtml(lang)}"' if lang else ""
    return (
        '<div class="code-block"><div class="code-head">'
        f'<span class="code-lang">{escapeHtml(lang or "text")}</span>'
        '<button type="button" class="code-copy" aria-label="Copy code">Copy</button></div>'
        f"<pre><code{cls}>{body}</code></pre></div>\n"
    )


def _citations_core(state: Any) -> None:
    """Split text tokens at citation markers into citation tokens (after inline parsing, so markers
    inside code spans stay code)."""
    for block in state.tokens:
        if block.type != "inline" or not block.children or "†" not in block.content:
            continue
        children: list[Token] = []
        for tok in block.children:
            if tok.type != "text" or "【" not in tok.content:
                children.append(tok)
                continue
            pos = 0
            for m in _CITATION.finditer(tok.content):
                if m.start() > pos:
                    children.append(_text_token(tok.content[pos : m.start()]))
                cite = Token("citation", "", 0)
                cite.content = m.group(0)
                cite.meta = {"name": m.group(2).strip()}
                children.append(cite)
                pos = m.end()
            if pos < len(tok.content):
                children.append(_text_token(tok.content[pos:]))
        block.children = children


def _text_token(content: str) -> Token:
    t = Token("text", "", 0)
    t.content = content
    return t


def _citation(self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """A numbered chip: numbers follow the cited files in order of first mention, so a chip reads
    the same while streaming (names only) and at the end (with the passage it links to)."""
    token = tokens[idx]
    name = token.meta["name"]
    numbers = env.setdefault("citation_numbers", {})
    number = numbers.setdefault(name, len(numbers) + 1)
    label = escapeHtml(f"Source {number}: {name}")
    anchor = (env.get("citation_anchors") or {}).get(name)
    if anchor:
        return f'<a class="cite-chip" href="#{escapeHtml(anchor)}" aria-label="{label}">{number}</a>'
    return f'<span class="cite-chip">{number}</span>'


@lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_link)
    md.add_render_rule("fence", _fence)
    md.add_render_rule("code_block", _indented_code)
    md.core.ruler.push("citations", _citations_core)
    md.add_render_rule("citation", _citation)
    return md


def _indented_code(
    self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    tokens[idx].info = ""
    return _fence(self, tokens, idx, options, env)


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    # Tables get their alignment as `style="text-align:…"`; keep that and nothing else.
    if attr == "style":
        return value if value in {"text-align:left", "text-align:center", "text-align:right"} else None
    if tag == "code" and attr == "class":
        return value if value.startswith("language-") and _LANG.fullmatch(value[9:]) else None
    if attr == "class":
        allowed = _CLASSES.get(tag, set())
        kept = [c for c in value.split() if c in allowed]
        return " ".join(kept) or None
    if tag == "button" and attr == "type":
        return "button"
    if tag == "a" and attr == "href" and value.startswith("#"):
        return value if re.fullmatch(r"#[A-Za-z0-9_-]{1,80}", value) else None
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


def markdown_to_html(text: str, citation_anchors: dict[str, str] | None = None) -> str:
    """Render untrusted Markdown (a model's reply, a user's message) to sanitized HTML.

    `citation_anchors` maps a cited file's name to the id of its entry in the reply's sources."""
    return sanitize(_md().render(text, {"citation_anchors": citation_anchors or {}}))


class LiveMarkdown:
    """A reply's Markdown while it streams, rendered a top-level block at a time.

    Every block but the last is final once a later block has begun (appending text can't change
    it, but for rare cases such as link reference definitions, which the final full render fixes),
    so each render returns the blocks that just became final, once, and the last block, again:
    the cost of a render follows the size of the last block, not of the whole reply. An unclosed
    code fence is a code block up to the end of the text, as CommonMark says.
    """

    def __init__(self) -> None:
        self.text = ""
        self._done = 0  # characters of `text` rendered as final blocks
        self._env: dict[str, Any] = {"citation_anchors": {}}
        # The growing block's renders: the same anchors, its code blocks' last highlights (`_growing`),
        # and the markers that stand for them, which the model cannot guess.
        self._streaming_env: dict[str, Any] = {
            "citation_anchors": self._env["citation_anchors"],
            "streaming": True,
            "growing_code": {},
            "growing_nonce": f"hl{secrets.token_hex(16)}n",
            "growing_slots": [],  # this render's highlights, in the order of their markers
        }

    def append(self, text: str) -> None:
        self.text += text

    def cheap(self) -> bool:
        """Whether the next render is cheap enough to make on the event loop: short, and no code
        block to highlight (a highlight can take milliseconds)."""
        rest = self.text[self._done :]
        return len(rest) <= CHEAP_RENDER_CHARS and "```" not in rest and "~~~" not in rest

    def render(self) -> tuple[str, str]:
        """(HTML of blocks that became final, HTML of the block still growing)."""
        md = _md()
        rest = self.text[self._done :]
        tokens = md.parse(rest, self._env)
        starts = [i for i, t in enumerate(tokens) if t.level == 0 and t.nesting >= 0 and t.map]
        done_html = ""
        if len(starts) > 1:
            cut_token = starts[-1]
            cut_line = tokens[cut_token].map[0]  # type: ignore[index]
            offset = _line_offset(rest, cut_line)
            # Final blocks are rendered once: a finished code block is highlighted now.
            done_html = sanitize(md.renderer.render(tokens[:cut_token], md.options, self._env))
            self._done += offset
            tokens = tokens[cut_token:]
        env = self._streaming_env
        env["growing_slots"].clear()
        tail_html = sanitize(md.renderer.render(tokens, md.options, env))
        for slot, html in enumerate(env["growing_slots"]):
            tail_html = tail_html.replace(f"{env['growing_nonce']}{slot}x", html, 1)
        return done_html, tail_html


def _line_offset(text: str, line: int) -> int:
    offset = 0
    for _ in range(line):
        nl = text.find("\n", offset)
        if nl < 0:
            return len(text)
        offset = nl + 1
    return offset


def content_text(content: list[dict[str, Any]]) -> str:
    """The text of an API message's content parts."""
    return "".join(
        (part.get("text") or {}).get("value", "") for part in content if part.get("type") == "text"
    )
