"""Per-user storage quota (API, chat, code-interpreter outputs share services/files.py) and what deleting
a thread or a user removes from disk."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from assistants_app.models import Assistant, File, Message, Thread
from assistants_app.services import keys
from assistants_app.services.threads import create_thread
from assistants_app.tools.code_interpreter.tool import workdir_for

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def workdirs(settings) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="ci-workdirs-"))
    settings.CODE_INTERPRETER_WORKDIR_ROOT = str(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ci-host-"))
    (path / "keep.txt").write_text("host file")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _file(owner, data: bytes, *, purpose: str = "assistants", thread: Thread | None = None) -> File:
    f = File(
        owner=owner,
        filename="f.bin",
        purpose=purpose,
        bytes=len(data),
        origin_thread_id=thread.id if thread else "",
    )
    f.data.save("upload", ContentFile(data), save=False)
    f.save()
    return f


def _api_upload(client, raw: str, data: bytes):
    return client.post(
        "/v1/files",
        {"purpose": "assistants", "file": SimpleUploadedFile("data.csv", data)},
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )


# --- quota -------------------------------------------------------------------------------------------
def test_api_upload_over_the_quota_is_413_and_stores_nothing(client, alice, settings) -> None:
    settings.USER_STORAGE_QUOTA_BYTES = 10_000
    raw = keys.create_key(alice).raw
    first = _api_upload(client, raw, b"a" * 6000)
    assert first.status_code == 200, first.content  # the positive control
    response = _api_upload(client, raw, b"b" * 6000)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "storage_quota_exceeded" and error["type"] == "invalid_request_error"
    assert error["param"] == "file" and "Storage quota exceeded" in error["message"]
    assert response["x-should-retry"] == "false"
    assert list(File.objects.values_list("id", flat=True)) == [first.json()["id"]]
    kept = File.objects.get()
    assert len(list(Path(kept.data.path).parent.iterdir())) == 1  # no blob of the refused upload
    assert kept.data.open("rb").read() == b"a" * 6000


def test_quota_counts_each_user_separately(client, alice, bob, settings) -> None:
    settings.USER_STORAGE_QUOTA_BYTES = 10_000
    _file(alice, b"a" * 9000)
    assert _api_upload(client, keys.create_key(bob).raw, b"b" * 9000).status_code == 200


def test_chat_upload_over_the_quota_is_refused_in_plain_words(client, alice, settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.USER_STORAGE_QUOTA_BYTES = 10_000
    Assistant.objects.create(
        name="Helper",
        model="gpt-4o",
        is_default=True,
        tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
    )
    _file(alice, b"a" * 9000)
    client.force_login(alice)
    upload = SimpleUploadedFile("notes.txt", b"x" * 2000, content_type="text/plain")
    response = client.post("/chat/send/", {"text": "read this", "attachments": upload}, **HX)
    assert response.status_code == 413
    page = response.content.decode()
    assert "There is no room left for this file" in page and "8.8 KB of your 9.8 KB" in page
    assert File.objects.count() == 1 and Message.objects.count() == 0


def test_a_user_over_the_quota_can_still_send_text(client, alice, settings) -> None:
    # The quota is about stored files: a lowered quota must not silence a user's chat.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.USER_STORAGE_QUOTA_BYTES = 1_000
    Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True, tools=[{"type": "file_search"}])
    _file(alice, b"a" * 2000)
    client.force_login(alice)
    response = client.post("/chat/send/", {"text": "hello"}, **HX)
    assert response.status_code == 200
    assert Message.objects.filter(role="user").count() == 1


# --- deletion ----------------------------------------------------------------------------------------
def test_deleting_a_thread_removes_its_workdir_and_its_outputs_only(
    client, alice, workdirs, host_dir, django_capture_on_commit_callbacks
) -> None:
    thread = create_thread(alice)
    other = create_thread(alice)
    workdir = workdir_for(thread.id)
    (workdir / "sub").mkdir(parents=True)
    (workdir / "sub" / "plot.png").write_bytes(b"png")
    (workdir / "host").symlink_to(host_dir)  # planted by the code: must not be followed
    (workdir / "sub" / "host-file").symlink_to(host_dir / "keep.txt")
    workdir_for(other.id).mkdir()
    output = _file(alice, b"out", purpose="assistants_output", thread=thread)
    other_output = _file(alice, b"other", purpose="assistants_output", thread=other)
    upload = _file(alice, b"upload")  # the user's own upload outlives the thread
    output_blob = Path(output.data.path)

    raw = keys.create_key(alice).raw
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"/v1/threads/{thread.id}", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200 and response.json()["deleted"] is True

    assert not workdir.exists() and workdir_for(other.id).exists()
    assert (host_dir / "keep.txt").read_text() == "host file"
    assert not File.objects.filter(id=output.id).exists() and not output_blob.exists()
    assert set(File.objects.values_list("id", flat=True)) == {other_output.id, upload.id}
    assert Path(upload.data.path).exists() and Path(other_output.data.path).exists()


def test_deleting_a_user_removes_their_workdirs_and_blobs(
    alice, bob, workdirs, host_dir, django_capture_on_commit_callbacks
) -> None:
    threads = [create_thread(alice) for _ in range(2)]
    for t in threads:
        workdir_for(t.id).mkdir()
        (workdir_for(t.id) / "data.csv").write_text("1,2")
        (workdir_for(t.id) / "escape").symlink_to(host_dir)
    blobs = [Path(_file(alice, b"x", purpose=p).data.path) for p in ("assistants", "assistants_output")]
    bobs_thread = create_thread(bob)
    workdir_for(bobs_thread.id).mkdir()
    bobs_blob = Path(_file(bob, b"y").data.path)

    with django_capture_on_commit_callbacks(execute=True):
        get_user_model().objects.filter(pk=alice.pk).delete()

    assert not any(workdir_for(t.id).exists() for t in threads)
    assert not any(b.exists() for b in blobs)
    assert (host_dir / "keep.txt").read_text() == "host file"
    assert workdir_for(bobs_thread.id).exists() and bobs_blob.exists()


def test_deleting_a_file_removes_its_blob(client, alice, django_capture_on_commit_callbacks) -> None:
    raw = keys.create_key(alice).raw
    file_id = _api_upload(client, raw, b"abc").json()["id"]
    blob = Path(File.objects.get(id=file_id).data.path)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"/v1/files/{file_id}", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    assert not blob.exists()
