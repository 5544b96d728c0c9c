"""One definition of a user's live file (models.files.FileQuerySet.live, services/lookups.py).

Before it, an expired file answered 404 on GET /files/{id} but could still be attached to a
message, named in tool_resources, or seeded into the code interpreter.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from assistants_app.models import Assistant, File, Message, Thread
from assistants_app.services import keys, lookups
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread, post_message
from assistants_app.tools.code_interpreter.tool import _attached_files

pytestmark = pytest.mark.django_db


def _file(owner, *, expired: bool) -> File:
    f = File(owner=owner, filename="notes.txt", purpose="assistants", bytes=5)
    if expired:
        f.expires_at = timezone.now() - timedelta(seconds=1)
    f.data.save("upload", ContentFile(b"notes"), save=False)
    f.save()
    return f


@pytest.fixture
def api(alice) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {keys.create_key(alice).raw}")


def test_an_expired_file_is_gone_everywhere_through_the_api(api, alice) -> None:
    live, expired = _file(alice, expired=False), _file(alice, expired=True)
    thread = api.post("/v1/threads", {}, content_type="application/json").json()
    assert api.get(f"/v1/files/{expired.id}").status_code == 404
    for f, status in ((live, 200), (expired, 400)):
        message = {"role": "user", "content": "see", "attachments": [{"file_id": f.id, "tools": []}]}
        response = api.post(f"/v1/threads/{thread['id']}/messages", message, content_type="application/json")
        assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_file_id" and error["param"] == "attachments[0].file_id"
    image = {"role": "user", "content": [{"type": "image_file", "image_file": {"file_id": expired.id}}]}
    response = api.post(f"/v1/threads/{thread['id']}/messages", image, content_type="application/json")
    assert (
        response.status_code == 400 and response.json()["error"]["param"] == "content[0].image_file.file_id"
    )
    resources = {"tool_resources": {"code_interpreter": {"file_ids": [expired.id]}}}
    response = api.post("/v1/threads", resources, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tool_resources.code_interpreter.file_ids[0]"
    assert Message.objects.filter(thread_id=thread["id"]).count() == 1  # only the live one


def test_services_and_the_code_interpreter_refuse_it_too(alice) -> None:
    live, expired = _file(alice, expired=False), _file(alice, expired=True)
    thread = create_thread(alice)
    with pytest.raises(Exception, match="No file found"):
        post_message(thread, content="x", attachments=[{"file_id": expired.id, "tools": []}])
    assert list(lookups.live_files(alice)) == [live]
    # Attached while it was live, then it expired: it is not copied into /mnt/data any more.
    post_message(
        thread, content="x", attachments=[{"file_id": live.id, "tools": [{"type": "code_interpreter"}]}]
    )
    run = start_run(thread, Assistant.objects.create(owner=alice, model="m"))
    assert _attached_files(run) == [live]
    File.objects.filter(id=live.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _attached_files(run) == []
    assert Thread.objects.count() == 1


def test_the_chat_page_does_not_serve_an_expired_file(alice) -> None:
    live, expired = _file(alice, expired=False), _file(alice, expired=True)
    client = Client()
    client.force_login(alice)
    assert client.get(f"/chat/files/{live.id}/").status_code == 200
    assert client.get(f"/chat/files/{expired.id}/").status_code == 404
