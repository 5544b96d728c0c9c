"""What tools produce reaches the chat page: code interpreter images and files, file citations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from django.urls import reverse

from assistants_app.backends import fake
from assistants_app.models import Assistant, File, Message
from assistants_app.services import chat
from assistants_app.tools.code_interpreter import sandbox
from assistants_app.web.fragments import bubble
from tests.support.helpers import wait_run

REPO = Path(__file__).resolve().parents[2]


def test_bubble_renders_images_file_links_and_citations() -> None:
    text = "Quexlin 【0†zorbania.md】. Data: [csv](sandbox:/mnt/data/d.csv)"
    m = {
        "id": "msg_x",
        "role": "assistant",
        "status": "completed",
        "incomplete_details": None,
        "content": [
            {
                "type": "text",
                "text": {
                    "value": text,
                    "annotations": [
                        {
                            "type": "file_citation",
                            "text": "【0†zorbania.md】",
                            "start_index": 8,
                            "end_index": 23,
                            "file_citation": {
                                "file_id": "file-a",
                                "quote": "The capital of Zorbania is Quexlin",
                            },
                        },
                        {
                            "type": "file_path",
                            "text": "sandbox:/mnt/data/d.csv",
                            "start_index": 40,
                            "end_index": 63,
                            "file_path": {"file_id": "file-csv"},
                        },
                    ],
                },
            },
            {"type": "image_file", "image_file": {"file_id": "file-png"}},
        ],
    }
    b = bubble(m)
    assert f'href="{reverse("chat_file", args=["file-csv"])}"' in b.html
    assert "sandbox:" not in b.html
    assert [i.file_id for i in b.images] == ["file-png"]
    assert [(s.number, s.name, s.quotes) for s in b.sources] == [
        (1, "zorbania.md", ["The capital of Zorbania is Quexlin"])
    ]


_problem = sandbox._probe_namespaces()


@pytest.mark.skipif(_problem is not None, reason=f"bubblewrap cannot run here: {_problem}")
def test_generated_png_reaches_the_chat_page(executor, settings, client, alice, bob):
    if not os.path.lexists(sandbox.sandbox_python()):
        subprocess.run(
            ["bash", str(REPO / "scripts" / "sandbox-venv.sh"), str(sandbox.venv_path())], check=True
        )
    root = Path(tempfile.mkdtemp(prefix="ci-web-"))
    root.chmod(0o755)
    settings.CODE_INTERPRETER_WORKDIR_ROOT = str(root)
    settings.CODE_INTERPRETER_WALL_SECONDS = 60
    try:
        Assistant.objects.create(
            name="Helper", model="gpt-4o", is_default=True, tools=[{"type": "code_interpreter"}]
        )
        code = "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.bar([1,2],[3,4])\nplt.savefig('/mnt/data/bars.png')"
        fake.script(
            fake.tool_turn(("code_interpreter", json.dumps({"code": code}))),
            fake.text_turn("Here is the chart."),
        )
        _, run = chat.send(alice, "Draw a bar chart")
        run = wait_run(run.id, timeout=120)
        assert run.status == "completed", run.last_error
        png = File.objects.get(
            id=next(p for p in Message.objects.get(run=run).content if p["type"] == "image_file")[
                "image_file"
            ]["file_id"]
        )
        url = reverse("chat_file", args=[png.id])
        client.force_login(alice)
        page = client.get(reverse("chat")).content.decode()
        assert f'<img src="{url}"' in page and "Here is the chart." in page
        image = client.get(url)
        assert image.status_code == 200 and image["Content-Type"] == "image/png"
        assert b"".join(image.streaming_content).startswith(b"\x89PNG")
        client.force_login(bob)
        assert client.get(url).status_code == 404
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_citations_show_on_the_chat_page(client, alice) -> None:
    Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True)
    thread = chat.live_thread(alice)
    assert thread is not None
    Message.objects.create(
        thread=thread,
        role="assistant",
        status="completed",
        content=[
            {
                "type": "text",
                "text": {
                    "value": "It is Quexlin 【0†zorbania.md】.",
                    "annotations": [
                        {
                            "type": "file_citation",
                            "text": "【0†zorbania.md】",
                            "start_index": 14,
                            "end_index": 29,
                            "file_citation": {
                                "file_id": "file-a",
                                "quote": "The capital of Zorbania is Quexlin",
                            },
                        }
                    ],
                },
            }
        ],
    )
    client.force_login(alice)
    page = client.get(reverse("chat")).content.decode()
    assert "zorbania.md" in page and "The capital of Zorbania is Quexlin" in page
