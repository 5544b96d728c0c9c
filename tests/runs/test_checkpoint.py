"""models.thread.checkpoint_content: the streaming text's save, a statement of its own."""

from __future__ import annotations

from assistants_app.models import Message, Thread
from assistants_app.models.thread import checkpoint_content
from assistants_app.runs.outputs import text_content


def test_a_checkpoint_stores_the_text_of_an_open_message_only(alice) -> None:
    thread = Thread.objects.create(owner=alice)
    open_msg = Message.objects.create(thread=thread, role="assistant", status=Message.Status.IN_PROGRESS)
    done = Message.objects.create(
        thread=thread, role="assistant", status=Message.Status.COMPLETED, content=text_content("final")
    )
    text = 'Partial "quoted" text, ünïcode and \\ backslashes'
    assert checkpoint_content(open_msg.id, text_content(text)) == 1
    open_msg.refresh_from_db()
    assert open_msg.content == text_content(text) and open_msg.text == text
    # Stored as the ORM stores JSON: lookups into it work on either database.
    assert Message.objects.filter(id=open_msg.id, content__0__type="text").exists()
    assert checkpoint_content(done.id, text_content("late")) == 0  # an ended message keeps its text
    done.refresh_from_db()
    assert done.text == "final"
