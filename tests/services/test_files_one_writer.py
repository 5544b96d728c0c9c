"""One writer of File rows (services/files.py store_file): the API's uploads, the chat page's
attachments, the admin's retrieval files and code-interpreter outputs are stored alike.

Before it, the API sniffed the content type from the bytes, the chat page trusted the client's
declared type, and code-interpreter outputs guessed it from the file name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from assistants_app.models import Assistant, File
from assistants_app.services import keys
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread
from assistants_app.tools.code_interpreter.tool import store_outputs, workdir_for

pytestmark = pytest.mark.django_db
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_a_chat_attachment_is_sniffed_not_trusted(alice) -> None:
    Assistant.objects.create(
        name="Helper",
        model="m",
        is_default=True,
        tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
    )
    client = Client()
    client.force_login(alice)
    upload = SimpleUploadedFile("notes.txt", b"<script>alert(1)</script> plain words", "text/html")
    response = client.post(
        "/chat/send/", {"text": "read it", "attachments": [upload]}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200, response.content
    stored = File.objects.get(owner=alice)
    assert stored.content_type == "text/plain"  # what the bytes and the name say, not "text/html"


def test_the_api_and_the_chat_store_the_same_bytes_alike(alice) -> None:
    Assistant.objects.create(
        name="Helper",
        model="m",
        is_default=True,
        tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
    )
    api = Client(HTTP_AUTHORIZATION=f"Bearer {keys.create_key(alice).raw}")
    response = api.post(
        "/v1/files", {"purpose": "assistants", "file": SimpleUploadedFile("pic.txt", PNG, "text/plain")}
    )
    assert response.status_code == 200, response.content
    web = Client()
    web.force_login(alice)
    upload = SimpleUploadedFile("pic.txt", PNG, "application/x-evil")
    assert web.post("/chat/send/", {"text": "look", "attachments": [upload]}).status_code == 302
    rows = File.objects.filter(owner=alice).order_by("id")
    assert [(f.filename, f.bytes, f.content_type) for f in rows] == [("pic.txt", len(PNG), "image/png")] * 2
    assert rows[0].sha256 == rows[1].sha256 != ""


def test_code_interpreter_outputs_are_sniffed_too(alice, settings, tmp_path) -> None:
    settings.CODE_INTERPRETER_WORKDIR_ROOT = str(tmp_path)
    run = start_run(create_thread(alice), Assistant.objects.create(owner=alice, model="m"))
    workdir = workdir_for(run.thread_id)
    workdir.mkdir(parents=True)
    (workdir / "chart.txt").write_bytes(PNG)  # a PNG under a text name
    (workdir / "data.bin").write_bytes(b"a,b\n1,2\n")  # text under a binary name
    outputs, _ = store_outputs(run, workdir, [Path("chart.txt"), Path("data.bin")])
    types = {f.filename: f.content_type for f in File.objects.filter(id__in=[o["file_id"] for o in outputs])}
    assert types == {"chart.txt": "image/png", "data.bin": "text/plain"}
