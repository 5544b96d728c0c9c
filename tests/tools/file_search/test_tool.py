"""File search as a hosted tool in runs: retrieval, file_search steps, citations, isolation."""

from __future__ import annotations

import hashlib
import json
import re

from django.core.files.base import ContentFile

from assistants_app.backends import fake
from assistants_app.backends.base import ChatRequest
from assistants_app.models import Assistant, File, Message, RunStep, VectorStore, VectorStoreFile
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread, post_message
from tests.support.helpers import ingest_now, wait_run

DOC = (
    "Zorbania travel notes.\n\nThe capital of Zorbania is Quexlin, a city on the river Ombe.\n\n"
    "Zorbanian trains leave every ten minutes. The currency is the zorb."
)


def make_file(owner, name: str, text: str) -> File:
    data = text.encode()
    f = File(
        owner=owner,
        filename=name,
        purpose="assistants",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    f.data.save(f.id, ContentFile(data), save=False)
    f.save()
    return f


def store_with(owner, *files: File) -> VectorStore:
    vs = VectorStore.objects.create(owner=owner, name="notes")
    for f in files:
        vsf = VectorStoreFile.objects.create(vector_store=vs, file=f)
        # ingest_now: the executor fixture's own ingestion loop may claim the file first.
        assert ingest_now(vsf.id) == "completed"
    return vs


def answer_from_passage(request: ChatRequest) -> fake.Turn:
    """A model that answers with the retrieved sentence and cites it."""
    tool = request.messages[-1]
    assert tool["role"] == "tool"
    marker = re.search(r"【\d+†[^】]+】", tool["content"])
    assert marker, tool["content"]
    sentence = re.search(r"The capital of Zorbania is [A-Za-z]+", tool["content"])
    return fake.text_turn(f"{sentence.group(0) if sentence else 'unknown'} {marker.group(0)}.")


def search_turn(query: str) -> fake.Turn:
    return fake.tool_turn(("file_search", json.dumps({"query": query})))


def test_run_answers_from_retrieved_passage_with_citation(executor, alice):
    f = make_file(alice, "zorbania.md", DOC)
    vs = store_with(alice, f)
    assistant = Assistant.objects.create(
        owner=alice,
        model="gpt-4o",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [vs.id]}},
    )
    fake.script(search_turn("capital of Zorbania"), answer_from_passage)
    thread = create_thread(alice)
    post_message(thread, role="user", content="What is the capital of Zorbania?")
    run = wait_run(start_run(thread, assistant).id)
    assert run.status == "completed", run.last_error
    step = RunStep.objects.get(run=run, type="tool_calls")
    call = step.step_details["tool_calls"][0]
    assert call["type"] == "file_search"
    top = call["file_search"]["results"][0]
    assert top["file_id"] == f.id and top["file_name"] == "zorbania.md" and 0 < top["score"] <= 1
    assert "Quexlin" in top["content"][0]["text"]
    msg = Message.objects.get(run=run)
    text = msg.content[0]["text"]["value"]
    assert text.startswith("The capital of Zorbania is Quexlin")
    ann = msg.content[0]["text"]["annotations"][0]
    assert ann["type"] == "file_citation" and ann["file_citation"]["file_id"] == f.id
    assert text[ann["start_index"] : ann["end_index"]] == ann["text"] == "【0†zorbania.md】"


def test_retrieval_never_crosses_owners(executor, alice, bob):
    vs = store_with(alice, make_file(alice, "zorbania.md", DOC))
    # Bob's assistant points at Alice's store (the API refuses this; the engine must too).
    assistant = Assistant.objects.create(
        owner=bob,
        model="gpt-4o",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [vs.id]}},
    )
    fake.script(search_turn("capital of Zorbania"), fake.text_turn("I don't know."))
    thread = create_thread(bob)
    post_message(thread, role="user", content="capital?")
    run = wait_run(start_run(thread, assistant).id)
    assert run.status == "completed"
    call = RunStep.objects.get(run=run, type="tool_calls").step_details["tool_calls"][0]
    assert call["file_search"]["results"] == []
    assert "Quexlin" not in fake.requests()[1].messages[-1]["content"]


def test_message_attachment_is_indexed_into_the_thread_store(executor, alice):
    f = make_file(alice, "notes.txt", DOC)
    assistant = Assistant.objects.create(owner=alice, model="gpt-4o", tools=[{"type": "file_search"}])
    thread = create_thread(alice)
    post_message(
        thread,
        role="user",
        content="What is the capital?",
        attachments=[{"file_id": f.id, "tools": [{"type": "file_search"}]}],
    )
    thread.refresh_from_db()
    store_id = thread.tool_resources["file_search"]["vector_store_ids"][0]
    assert VectorStore.objects.get(id=store_id).owner == alice
    fake.script(search_turn("capital of Zorbania"), answer_from_passage)
    run = wait_run(start_run(thread, assistant).id, timeout=60)
    assert run.status == "completed", run.last_error
    assert VectorStoreFile.objects.get(vector_store_id=store_id, file=f).status == "completed"
    assert Message.objects.get(run=run).text.startswith("The capital of Zorbania is Quexlin")


def test_staff_assistant_stores_serve_chat_users(executor, staff, alice):
    vs = store_with(staff, make_file(staff, "handbook.md", DOC))
    assistant = Assistant.objects.create(
        model="gpt-4o",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [vs.id]}},
    )
    fake.script(search_turn("capital of Zorbania"), answer_from_passage)
    thread = create_thread(alice, is_chat=True)
    post_message(thread, role="user", content="capital?")
    run = wait_run(start_run(thread, assistant).id)
    assert run.status == "completed"
    assert Message.objects.get(run=run).content[0]["text"]["annotations"][0]["file_citation"]["file_id"]
