"""Model output is never inserted into the page as raw HTML."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from assistants_app.web import rendering
from assistants_app.web.fragments import merge
from assistants_app.web.live import EventRenderer
from assistants_app.web.rendering import LiveMarkdown, markdown_to_html, sanitize


@pytest.mark.parametrize(
    "source",
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        "<svg onload=alert(1)>",
        "<iframe src=https://example.com></iframe>",
        '<a href="javascript:alert(1)">x</a>',
        "<style>body{display:none}</style>",
    ],
)
def test_raw_html_from_the_model_is_shown_as_text(source: str) -> None:
    html = markdown_to_html(source)
    assert elements(html) == [("p", [])]
    assert "&lt;" in html  # visible as text, not silently dropped


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, [name for name, _ in attrs]))


def elements(html: str) -> list[tuple[str, list[str]]]:
    """The elements (and their attribute names) that a browser would build from `html`."""
    parser = _Elements()
    parser.feed(html)
    return parser.found


@pytest.mark.parametrize(
    "source",
    [
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "[x](vbscript:msgbox(1))",
        "![x](javascript:alert(1))",
    ],
)
def test_dangerous_link_schemes_are_not_links(source: str) -> None:
    html = markdown_to_html(source)
    assert "href" not in html


def test_safe_links_get_rel_noopener_nofollow() -> None:
    html = markdown_to_html('see [the docs](https://example.com/a?b=1&c=2 "Title")')
    assert 'href="https://example.com/a?b=1&amp;c=2"' in html
    assert 'rel="noopener nofollow noreferrer"' in html
    assert "Title" in html


def test_images_become_links_so_the_page_fetches_nothing() -> None:
    html = markdown_to_html("![a chart](https://example.com/chart.png)")
    assert "<img" not in html
    assert '<a href="https://example.com/chart.png"' in html and "a chart" in html


def test_tables_and_code_blocks_are_kept() -> None:
    html = markdown_to_html(
        "| a | b |\n|:--|--:|\n| 1 | <2> |\n\n```python\nif x < 1 and y > 2:\n    print('<b>')\n```\n"
    )
    assert "<table>" in html and '<th style="text-align:left">a</th>' in html
    assert '<td style="text-align:right">&lt;2&gt;</td>' in html
    assert '<pre><code class="language-python">' in html
    text = re.sub(r"<[^>]+>", "", html)  # Pygments wraps tokens in spans
    assert "if x &lt; 1 and y &gt; 2:" in text and "print('&lt;b&gt;')" in text


def _code(html: str) -> str:
    return html[html.index("<code") : html.index("</code>")]


def test_a_growing_code_block_reuses_its_highlight_and_is_highlighted_whole_once_final(monkeypatch) -> None:
    """Highlighting the growing block whole at every partial render cost ~15 ms a render: its last
    highlight is reused, the lines after it plain, until they are more than a quarter of it."""
    calls: list[str] = []
    real = rendering.highlight  # type: ignore[attr-defined]

    def counting(code: str, lexer: Any, formatter: Any) -> str:
        calls.append(code)
        return real(code, lexer, formatter)  # type: ignore[no-any-return]

    monkeypatch.setattr(rendering, "highlight", counting)
    live = LiveMarkdown()
    live.append("```python\nif x < 1:\n")
    done, tail = live.render()
    assert done == ""
    assert '<code class="language-python"><span class="k">if</span>' in tail
    live.append("    y = 2")  # an unfinished line: plain after the highlight so far
    tail = live.render()[1]
    assert '<span class="k">if</span>' in tail and tail.count('<span class="k">') == 1
    assert _code(tail).endswith("\n    y = 2")
    assert len(calls) == 1
    for i in range(200):
        live.append(f"\nz{i} = '<b>'")
        tail = live.render()[1]
    assert 3 <= len(calls) <= 25  # O(log n) highlights for 200 renders
    assert "<b>" not in tail and "&lt;b&gt;" in tail
    plain = _code(tail)[_code(tail).rfind("</span>") :]
    assert len(plain) <= max(rendering.STREAM_PLAIN_CHARS, len(calls[-1]) // 4) + 40
    live.append("\n```\n\nDone.")
    done, tail = live.render()
    assert '<span class="n">y</span>' in done and '<span class="n">z199</span>' in done  # whole, once final
    assert tail == "<p>Done.</p>\n"
    assert "hl" not in re.sub(r"<[^>]+>", "", done)  # no marker left behind


def test_lexers_are_looked_up_once_per_language(monkeypatch) -> None:
    calls: list[str] = []
    real = rendering.get_lexer_by_name  # type: ignore[attr-defined]

    def counting(name: str):
        calls.append(name)
        return real(name)

    monkeypatch.setattr(rendering, "get_lexer_by_name", counting)
    rendering._lexer.cache_clear()
    for _ in range(3):
        assert '<span class="n">x</span>' in markdown_to_html("```Python\nx = 1\n```\n\n```python\nx\n```")
        assert "<span" not in _code(markdown_to_html("```no-such-language\nx = 1\n```"))
    assert calls == ["python", "no-such-language"]
    rendering._lexer.cache_clear()


def test_inline_formatting_lists_and_quotes() -> None:
    html = markdown_to_html("**bold** _em_ ~~gone~~ `code`\n\n- one\n- two\n\n> quoted")
    for tag in ("<strong>", "<em>", "<s>", "<code>", "<ul>", "<li>", "<blockquote>"):
        assert tag in html


def test_sanitizer_alone_strips_what_a_renderer_bug_could_let_through() -> None:
    dirty = '<p onclick="x()">hi<script>alert(1)</script><a href="javascript:x">l</a><code class="x onmouseover">c</code></p>'
    clean = sanitize(dirty)
    assert "onclick" not in clean and "<script" not in clean and "javascript:" not in clean
    assert "onmouseover" not in clean
    assert sanitize('<td style="background:url(x)">1</td>') == "1"  # not in a table: dropped


def test_streamed_deltas_are_escaped_and_merged() -> None:
    r = EventRenderer("Bot")
    ops = []
    for text in ("<img src=x ", "onerror=alert(1)>", " & more"):
        ops += r.render(
            "thread.message.delta",
            {
                "id": "msg_1",
                "delta": {
                    "content": [{"index": 0, "type": "text", "text": {"value": text, "annotations": []}}]
                },
            },
        )
    assert ops == [] and r.pending  # buffered until the consumer's next render
    frame = merge(r.flush())
    assert frame == (
        '<div hx-swap-oob="innerHTML:#m-msg_1-tail"><p>&lt;img src=x onerror=alert(1)&gt; &amp; more</p>\n</div>'
    )


def test_completed_message_is_rerendered_as_sanitized_markdown() -> None:
    r = EventRenderer("Bot")
    data = {
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "incomplete_details": None,
        "content": [
            {"type": "text", "text": {"value": "**hi** <script>alert(1)</script>", "annotations": []}}
        ],
    }
    frame = merge(r.render("thread.message.completed", data))
    assert "<strong>hi</strong>" in frame and "<script" not in frame and "&lt;script&gt;" in frame
    assert 'id="m-msg_1"' in frame and "Bot" in frame


def test_tool_call_arguments_and_outputs_are_escaped() -> None:
    r = EventRenderer("Bot")
    delta = {
        "id": "step_1",
        "delta": {
            "step_details": {
                "type": "tool_calls",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "code_interpreter",
                        "code_interpreter": {
                            "input": "print('<script>')",
                            "outputs": [{"type": "logs", "logs": "<b>out</b>"}],
                        },
                    }
                ],
            }
        },
    }
    frame = merge(r.render("thread.run.step.delta", delta))
    assert "Code interpreter" in frame
    assert "print(&#x27;&lt;script&gt;&#x27;)" in frame and "&lt;b&gt;out&lt;/b&gt;" in frame
    assert "<script" not in frame and "<b>" not in frame


def test_finished_tool_steps_show_inputs_outputs_and_results() -> None:
    r = EventRenderer("Bot")
    step = {
        "id": "step_9",
        "object": "thread.run.step",
        "type": "tool_calls",
        "status": "completed",
        "last_error": None,
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "code_interpreter",
                    "code_interpreter": {
                        "input": "1+1",
                        "outputs": [
                            {"type": "logs", "logs": "2"},
                            {"type": "image", "image": {"file_id": "file-abc"}},
                        ],
                    },
                },
                {
                    "id": "c2",
                    "type": "file_search",
                    "file_search": {
                        "ranking_options": {},
                        "results": [
                            {"file_id": "file-1", "file_name": "<notes>.txt", "score": 0.9},
                            {"file_id": "file-1", "file_name": "<notes>.txt", "score": 0.5},
                        ],
                    },
                },
                {
                    "id": "c3",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": "{}", "output": "<found>"},
                },
            ],
        },
    }
    frame = merge(r.render("thread.run.step.completed", step))
    assert 'hx-swap-oob="beforeend:#messages"' in frame and 'id="s-step_9"' in frame
    assert "Code interpreter" in frame and "1+1" in frame and ">2<" in frame
    assert 'href="/chat/files/file-abc/"' in frame
    assert "File search" in frame and "2 result(s) from &lt;notes&gt;.txt" in frame
    assert "Function lookup" in frame and "&lt;found&gt;" in frame
    assert "<notes>" not in frame and "<found>" not in frame


def test_run_lifecycle_fragments() -> None:
    r = EventRenderer("Bot")
    active = merge(r.render("thread.run.in_progress", {"id": "run_1"}))
    assert 'data-run-active="run_1"' in active and 'hx-post="/chat/stop/"' in active
    failed = merge(
        r.render(
            "thread.run.failed", {"id": "run_1", "last_error": {"code": "server_error", "message": "<Boom>"}}
        )
    )
    # End users get plain words; the technical message is for staff (admin, logs).
    assert "data-run-active" not in failed and "Boom" not in failed and 'hx-post="/chat/retry/"' in failed
    assert "Something went wrong" in failed
    # "Stopped." is the stopped reply's own note; the notice offers to continue.
    stopped = merge(r.render("thread.run.cancelled", {"id": "run_1"}))
    assert "Stopped." not in stopped and 'hx-post="/chat/continue/"' in stopped
    # Deltas to different targets stay in order; deltas to one target are merged.
    ops = r.render(
        "thread.message.delta", {"id": "a", "delta": {"content": [{"type": "text", "text": {"value": "1"}}]}}
    )
    ops += r.render(
        "thread.message.delta", {"id": "b", "delta": {"content": [{"type": "text", "text": {"value": "2"}}]}}
    )
    ops += r.render(
        "thread.message.delta", {"id": "b", "delta": {"content": [{"type": "text", "text": {"value": "3"}}]}}
    )
    assert merge(r.flush()) == (
        '<div hx-swap-oob="innerHTML:#m-a-tail"><p>1</p>\n</div><div hx-swap-oob="innerHTML:#m-b-tail"><p>23</p>\n</div>'
    )
