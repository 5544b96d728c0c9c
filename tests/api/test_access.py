"""Authentication, isolation between users, error shapes and files, through the SDK against the real server."""

from __future__ import annotations

import io
from pathlib import Path

import httpx2
import openai
import pytest

from tests.fakes.upstream import tool_calls
from tests.support.live_server import FILE_LIMIT, LiveServer

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]


# --- authentication ---------------------------------------------------------------------------------------
def test_bad_missing_and_weak_keys_are_401_without_retries(live: LiveServer) -> None:
    for key in ("sk-as-" + "A1b2C3d4" * 5, "sk-xxx", "short"):
        client, counter = live.counted_client()
        client.api_key = key
        with pytest.raises(openai.AuthenticationError) as err:
            client.beta.assistants.list()
        assert err.value.status_code == 401
        assert err.value.code == "invalid_api_key" and err.value.type == "invalid_request_error"
        assert counter.count() == 1
    response = httpx2.get(f"{live.base_url}/assistants")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_revoked_key_stops_working(live: LiveServer) -> None:
    raw = live.manage("create_api_key", "alice", "--name", "temp").strip().splitlines()[-1]
    assert raw.startswith("sk-as-") and len(raw) == len("sk-as-") + 40
    client = openai.OpenAI(base_url=live.base_url, api_key=raw)
    assert client.beta.assistants.list().data is not None
    out = live.manage("revoke_api_key", raw[:12])
    assert "Revoked" in out
    with pytest.raises(openai.AuthenticationError):
        client.beta.assistants.list()


# --- isolation --------------------------------------------------------------------------------------------
def test_other_users_objects_are_404(live: LiveServer) -> None:
    alice, bob = live.client("alice"), live.client("bob")
    asst = alice.beta.assistants.create(
        model="gpt-4o", tools=[{"type": "function", "function": {"name": "f"}}]
    )
    thread = alice.beta.threads.create(messages=[{"role": "user", "content": "private"}])
    msg = alice.beta.threads.messages.list(thread.id).data[0]
    live.upstream.script(tool_calls(("f", "{}")))
    run = alice.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id)
    assert run.status == "requires_action"
    file = alice.files.create(file=("secret.txt", b"top secret"), purpose="assistants")

    attempts = [
        lambda: bob.beta.assistants.retrieve(asst.id),
        lambda: bob.beta.assistants.update(asst.id, name="mine"),
        lambda: bob.beta.assistants.delete(asst.id),
        lambda: bob.beta.threads.retrieve(thread.id),
        lambda: bob.beta.threads.update(thread.id, metadata={"a": "b"}),
        lambda: bob.beta.threads.delete(thread.id),
        lambda: bob.beta.threads.messages.list(thread.id),
        lambda: bob.beta.threads.messages.create(thread.id, role="user", content="hi"),
        lambda: bob.beta.threads.messages.retrieve(msg.id, thread_id=thread.id),
        lambda: bob.beta.threads.runs.retrieve(run.id, thread_id=thread.id),
        lambda: bob.beta.threads.runs.list(thread.id),
        lambda: bob.beta.threads.runs.cancel(run.id, thread_id=thread.id),
        lambda: bob.beta.threads.runs.steps.list(run.id, thread_id=thread.id),
        lambda: bob.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "x", "output": "y"}]
        ),
        lambda: bob.files.retrieve(file.id),
        lambda: bob.files.content(file.id),
        lambda: bob.files.delete(file.id),
    ]
    for attempt in attempts:
        with pytest.raises(openai.NotFoundError):
            attempt()
    # Bob can't run Alice's assistant on his own thread, nor reference her file.
    bob_thread = bob.beta.threads.create()
    with pytest.raises(openai.NotFoundError) as err:
        bob.beta.threads.runs.create(thread_id=bob_thread.id, assistant_id=asst.id)
    assert err.value.param == "assistant_id"
    with pytest.raises(openai.BadRequestError):
        bob.beta.threads.messages.create(
            bob_thread.id, role="user", content="x", attachments=[{"file_id": file.id, "tools": []}]
        )
    assert asst.id not in [a.id for a in bob.beta.assistants.list()]
    assert file.id not in [f.id for f in bob.files.list()]
    # Alice still has everything.
    assert alice.beta.threads.retrieve(thread.id).id == thread.id
    alice.beta.threads.runs.cancel(run.id, thread_id=thread.id)


# --- error shapes -----------------------------------------------------------------------------------------
def test_unknown_url_and_method_are_json(live: LiveServer) -> None:
    client = live.client()
    with pytest.raises(openai.NotFoundError) as err:
        client.get("/nothing/here", cast_to=dict)
    assert "Invalid URL" in err.value.message
    headers = {"Authorization": f"Bearer {live.keys['alice']}"}
    response = httpx2.put(f"{live.base_url}/assistants", headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["error"]["type"] == "invalid_request_error"
    response = httpx2.post(f"{live.base_url}/threads", headers=headers, content=b"{not json")
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    response = httpx2.post(f"{live.base_url}/threads", headers=headers, content=b"[1, 2]")
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("Invalid type")


# --- files ------------------------------------------------------------------------------------------------
def test_files_upload_list_retrieve_content_delete(live: LiveServer) -> None:
    client = live.client()
    pdf = b"%PDF-1.4\n% tiny\n" + b"x" * 100
    f = client.files.create(file=("../../etc/report.pdf", io.BytesIO(pdf)), purpose="assistants")
    assert f.id.startswith("file-") and f.object == "file" and f.bytes == len(pdf)
    assert f.filename == "report.pdf" and f.purpose == "assistants" and f.status == "processed"
    note = client.files.create(file=("note.md", b"# hello\n"), purpose="user_data")
    assert client.files.retrieve(f.id).filename == "report.pdf"
    content = client.files.content(f.id)
    assert content.read() == pdf
    assert content.response.headers["content-type"] == "application/pdf"
    assert client.files.content(note.id).response.headers["content-type"].startswith("text/markdown")
    ids = [x.id for x in client.files.list()]
    assert f.id in ids and note.id in ids
    assert [x.id for x in client.files.list(purpose="user_data")] == [note.id]
    assert len(client.files.list(limit=1).data) == 1
    # Stored under a server-chosen name, never the client's path.
    stored = list((live.data_dir / "media" / "files").rglob("*"))
    assert any(p.name == f.id for p in stored) and not any(
        "etc" in p.parts or p.name.endswith(".pdf") for p in stored
    )
    assert [x for x in Path(live.data_dir).rglob("report.pdf")] == []
    gone = client.files.delete(f.id)
    assert gone.deleted is True and gone.id == f.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(f.id)


def test_file_auto_pagination(live: LiveServer) -> None:
    client = live.client("bob")
    made = [client.files.create(file=(f"f{i}.txt", b"data"), purpose="assistants").id for i in range(3)]
    assert [f.id for f in client.files.list(limit=2, order="asc")] == made


def test_oversize_upload_is_413(live: LiveServer) -> None:
    client, counter = live.counted_client()
    with pytest.raises(openai.APIStatusError) as err:
        client.files.create(file=("big.bin", b"\0" * (FILE_LIMIT + 1)), purpose="assistants")
    assert err.value.status_code == 413
    assert err.value.body["code"] == "payload_too_large"  # type: ignore[index]
    assert counter.count() == 1
    with pytest.raises(openai.BadRequestError) as bad:
        client.files.create(file=("a.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]
    assert bad.value.param == "purpose"


def test_message_attachments_and_image_files(live: LiveServer) -> None:
    client = live.client()
    png = client.files.create(file=("p.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 20), purpose="vision")
    thread = client.beta.threads.create()
    msg = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[{"type": "text", "text": "see"}, {"type": "image_file", "image_file": {"file_id": png.id}}],
    )
    assert msg.content[1].type == "image_file" and msg.content[1].image_file.file_id == png.id
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.messages.create(
            thread.id, role="user", content=[{"type": "image_file", "image_file": {"file_id": "file-nope"}}]
        )
    assert err.value.param == "content[0].image_file.file_id"
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.messages.create(
            thread.id, role="user", content="x", attachments=[{"file_id": "file-nope", "tools": []}]
        )
    assert err.value.param == "attachments[0].file_id"
