"""The chat's assistants (issue 12 items 7 and 10): which assistants staff offer, a user's pick per
conversation, the fallback when staff withdraw one, and the tools an attachment gets."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from assistants_app.management.commands import bootstrap
from assistants_app.models import Assistant, File, Message, Run, Thread
from assistants_app.services import assistants, chat, conversations
from assistants_app.tools.code_interpreter.sandbox import SandboxUnavailable

pytestmark = pytest.mark.django_db

FILE_TOOLS = [{"type": "file_search"}, {"type": "code_interpreter"}]


@pytest.fixture
def default(db):
    return Assistant.objects.create(name="Helper", model="m-default", is_default=True, tools=FILE_TOOLS)


@pytest.fixture
def nova(db):
    return Assistant.objects.create(
        name="Nova", model="m-nova", instructions="You are Nova.", chat_visible=True, tools=[]
    )


def _upload(name: str = "notes.txt") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, b"the launch code is 1234", content_type="text/plain")


# --- what staff offer ----------------------------------------------------------------------------
def test_offered_are_the_default_and_the_staff_assistants_marked_visible(alice, default, nova) -> None:
    hidden = Assistant.objects.create(name="Draft", model="m")
    # An API user's own assistant is never offered in the chat, even marked visible.
    api = Assistant.objects.create(owner=alice, name="Mine", model="m", chat_visible=True)
    offered = set(assistants.chat_visible_assistants().values_list("id", flat=True))
    assert offered == {default.id, nova.id}
    assert hidden.id not in offered and api.id not in offered
    # The default one is offered even when not marked.
    assert not default.chat_visible
    assert assistants.chat_visibility_problem(api) is not None
    assert assistants.chat_visibility_problem(nova) is None


def test_a_new_conversation_has_the_default_preselected_among_the_options(alice, default, nova) -> None:
    choice = chat.assistant_choice(conversations.current(alice))
    assert choice.assistant == default and choice.options == [default, nova] and not choice.withdrawn


# --- picking ------------------------------------------------------------------------------------
def test_a_pick_is_stored_on_the_conversation_and_its_runs_use_it(alice, default, nova) -> None:
    thread = conversations.current(alice)
    chat.pick_assistant(alice, thread, nova.id)
    assert Thread.objects.get(id=thread.id).chat_assistant_id == nova.id
    _, run = chat.send(alice, "hello", thread=Thread.objects.get(id=thread.id))
    assert run.assistant_id == nova.id and run.model == "m-nova" and run.instructions == "You are Nova."
    other = conversations.start_new(alice)
    assert other.id != thread.id
    # Only that conversation: another one still talks to the default.
    _, run2 = chat.send(alice, "hi", thread=other)
    assert run2.assistant_id == default.id
    # Regenerating in the picked conversation uses its assistant too.
    Run.objects.filter(id=run.id).update(status="completed")
    change = chat.regenerate(alice, Thread.objects.get(id=thread.id))
    assert change.run is not None and change.run.assistant_id == nova.id


def test_picking_the_default_stores_no_pick(alice, default, nova) -> None:
    thread = conversations.current(alice)
    chat.pick_assistant(alice, thread, nova.id)
    choice = chat.pick_assistant(alice, thread, default.id)
    assert choice.assistant == default and Thread.objects.get(id=thread.id).chat_assistant_id is None


@pytest.mark.parametrize("which", ["hidden", "api", "made-up", "empty"])
def test_only_an_offered_assistant_can_be_picked(alice, bob, default, nova, which) -> None:
    ids = {
        "hidden": Assistant.objects.create(name="Draft", model="m").id,
        # Bob's API assistant marked visible (only staff could mark it, but it is still no chat one).
        "api": Assistant.objects.create(owner=bob, name="Bob's", model="m", chat_visible=True).id,
        "made-up": "asst_nope",
        "empty": "",
    }
    thread = conversations.current(alice)
    chat.pick_assistant(alice, thread, nova.id)
    with pytest.raises(chat.ChatError) as caught:
        chat.pick_assistant(alice, thread, ids[which])
    assert caught.value.status == 400 and "Pick" in caught.value.message
    assert Thread.objects.get(id=thread.id).chat_assistant_id == nova.id  # unchanged


def test_a_pick_in_someone_elses_conversation_is_refused(alice, bob, default, nova) -> None:
    with pytest.raises(chat.ChatError) as caught:
        chat.pick_assistant(bob, conversations.current(alice), nova.id)
    assert caught.value.status == 404


def test_a_withdrawn_assistant_falls_back_to_the_default_and_says_so(alice, default, nova) -> None:
    thread = conversations.current(alice)
    chat.pick_assistant(alice, thread, nova.id)
    Assistant.objects.filter(id=nova.id).update(chat_visible=False)  # staff hide it
    thread = Thread.objects.get(id=thread.id)
    choice = chat.assistant_choice(thread)
    assert choice.assistant == default and choice.withdrawn == "Nova"
    assert (
        "Nova is no longer available" in choice.withdrawn_note and "Helper answers" in choice.withdrawn_note
    )
    _, run = chat.send(alice, "still there?", thread=thread)
    assert run.assistant_id == default.id
    # Offered again: the conversation goes back to it (the pick was kept).
    Assistant.objects.filter(id=nova.id).update(chat_visible=True)
    assert chat.assistant_choice(thread).assistant.id == nova.id


def test_no_default_assistant_is_a_setup_error_in_words(alice) -> None:
    with pytest.raises(chat.ChatError) as caught:
        chat.send(alice, "hello")
    assert caught.value.status == 503 and "bootstrap" in caught.value.message


# --- attachments follow the assistant's tools -----------------------------------------------------
def test_an_attachment_gets_only_the_tools_the_assistant_has(alice, default) -> None:
    coder = Assistant.objects.create(
        name="Coder", model="m", chat_visible=True, tools=[{"type": "code_interpreter"}]
    )
    thread = conversations.current(alice)
    chat.pick_assistant(alice, thread, coder.id)
    msg, _ = chat.send(alice, "read this", [_upload()], thread=Thread.objects.get(id=thread.id))
    assert [a["tools"] for a in msg.attachments] == [[{"type": "code_interpreter"}]]
    # So it was not put in a vector store nobody searches.
    assert not (Thread.objects.get(id=thread.id).tool_resources or {}).get("file_search")

    other = conversations.start_new(alice)
    msg2, _ = chat.send(alice, "and this", [_upload("b.txt")], thread=other)
    assert [a["tools"] for a in msg2.attachments] == [FILE_TOOLS]


def test_an_attachment_for_an_assistant_without_file_tools_is_refused_and_nothing_stored(
    alice, default, nova
) -> None:
    thread = conversations.current(alice)
    chat.pick_assistant(alice, thread, nova.id)
    choice = chat.assistant_choice(Thread.objects.get(id=thread.id))
    assert choice.attachment_tools == []
    assert "Nova can't read files" in choice.attach_note and "pick Helper" in choice.attach_note
    with pytest.raises(chat.ChatError) as caught:
        chat.send(alice, "read this", [_upload()], thread=Thread.objects.get(id=thread.id))
    assert "Nova can't read files" in caught.value.message and "notes.txt" in caught.value.message
    assert File.objects.count() == 0 and Message.objects.count() == 0 and Run.objects.count() == 0
    # Without the file the message goes.
    _, run = chat.send(alice, "no file then", thread=Thread.objects.get(id=thread.id))
    assert run.assistant_id == nova.id


# --- bootstrap -------------------------------------------------------------------------------------
def test_bootstrap_gives_a_new_default_file_search_and_the_code_interpreter_when_the_sandbox_works(
    db, monkeypatch
) -> None:
    from assistants_app.tools.code_interpreter import bwrap

    monkeypatch.setattr(bwrap, "check_available", lambda: None)
    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    assert Assistant.objects.get(is_default=True).tools == FILE_TOOLS
    assert "file search and code interpreter" in out.getvalue()


def test_bootstrap_leaves_the_code_interpreter_off_when_the_sandbox_does_not_work(db, monkeypatch) -> None:
    from assistants_app.tools.code_interpreter import bwrap

    def broken() -> None:
        raise SandboxUnavailable("bwrap cannot create namespaces here")

    monkeypatch.setattr(bwrap, "check_available", broken)
    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    assert Assistant.objects.get(is_default=True).tools == [{"type": "file_search"}]
    assert "Code interpreter left off" in out.getvalue() and "namespaces" in out.getvalue()


def test_bootstrap_does_not_change_an_existing_default(db) -> None:
    existing = Assistant.objects.create(name="Ours", model="m", is_default=True, tools=[])
    call_command("bootstrap", stdout=io.StringIO())
    assert list(Assistant.objects.all()) == [existing]
    assert Assistant.objects.get(id=existing.id).tools == []


def test_the_sandbox_check_is_the_executions_own() -> None:
    # bootstrap asks the same function the sandbox uses before every execution.
    tools, problem = bootstrap.default_tools()
    from assistants_app.tools.code_interpreter.sandbox import available

    assert ({"type": "code_interpreter"} in tools) == available() == (problem is None)
