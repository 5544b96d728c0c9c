"""What the chat page's Markdown rendering costs per streamed token (web/rendering.py).

A reply is fed to `LiveMarkdown` token by token and rendered every `--every` tokens, as the chat
socket renders a reply streaming at 50 tokens/s every CHAT_RENDER_INTERVAL_MS (100 ms: 5 tokens);
then rendered once more as the final render (`markdown_to_html`, the history view's). Three replies:

- words: one paragraph of "w0 w1 …" (what bench_capacity's fake upstream sends);
- prose: paragraphs with bold, code spans and links, a list;
- code: a sentence, then a Python code block of `--lines` lines, then a sentence.

Prints CPU microseconds per token of the partial renders and milliseconds of the final render.

    .venv/bin/python -m bench.bench_render [--tokens 600] [--lines 80] [--every 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time


def replies(tokens: int, lines: int) -> dict[str, list[str]]:
    words = [f" w{i}" for i in range(tokens)]
    prose: list[str] = []
    while len(prose) < tokens:
        prose += ["The ", "**plan** ", "is ", "to ", "call ", "`fetch()` ", "and ", "read ", "[the docs]", "(https://example.com/docs) ", "first.", "\n\n"]  # fmt: skip
        prose += ["- one ", "item\n", "- another ", "item\n\n"]
    code = ["Here ", "is ", "the ", "code:\n\n", "```python\n"]
    for i in range(lines):
        code += [f"    value_{i} ", "= ", f"compute({i}, ", "'x')", "\n"]
    code += ["```\n\n", "That ", "is ", "all."]
    return {"words": words, "prose": prose[:tokens], "code": code}


def measure(pieces: list[str], every: int) -> tuple[float, float]:
    from assistants_app.web.rendering import LiveMarkdown, markdown_to_html

    live = LiveMarkdown()
    start = time.process_time()
    for i, piece in enumerate(pieces, 1):
        live.append(piece)
        if i % every == 0:
            live.render()
    live.render()
    partial = time.process_time() - start
    start = time.process_time()
    markdown_to_html(live.text)
    final = time.process_time() - start
    return partial / len(pieces) * 1e6, final * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=600, help="tokens of the words and prose replies")
    ap.add_argument("--lines", type=int, default=80, help="lines of the code reply's block")
    ap.add_argument("--every", type=int, default=5, help="tokens between partial renders")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    measure(["warm ", "up\n\n```python\nx = 1\n```\n"], 1)
    print("| reply | tokens | characters | partial renders, CPU per token (µs) | final render (ms) |")
    print("|---|---:|---:|---:|---:|")
    for name, pieces in replies(a.tokens, a.lines).items():
        runs = [measure(pieces, a.every) for _ in range(a.repeat)]
        per_token = min(r[0] for r in runs)
        final = min(r[1] for r in runs)
        print(f"| {name} | {len(pieces)} | {len(''.join(pieces))} | {per_token:.0f} | {final:.1f} |")


if __name__ == "__main__":
    main()
