"""The chat page's images, server side (services/chat.py): offered for assistants whose model takes
images, sent as image_file parts of the user's message (stored with purpose "vision"), shown to the
model as image parts; refused in words otherwise, leaving nothing stored."""

from __future__ import annotations

import base64

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from assistants_app.backends import fake
from assistants_app.models import Assistant, File, Message, Run
from assistants_app.services import chat, chat_uploads
from tests.support.helpers import wait_run
from tests.support.images import png


def _image(name: str = "red.png", body: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, png() if body is None else body, content_type="image/png")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "setting", "offered"),
    [
        ("gpt-4o", "auto", True),
        ("llama3.2", "auto", False),
        ("llama3.2", "yes", True),
        ("gpt-4o", "no", False),
    ],
)
def test_accepts_images_follows_the_assistants_setting_then_its_model(model, setting, offered) -> None:
    assert chat_uploads.accepts_images() is False  # no assistant yet
    Assistant.objects.create(name="Helper", model=model, is_default=True, accepts_images=setting)
    assert chat_uploads.accepts_images() is offered


def test_images_go_to_the_model_as_image_parts(executor, alice) -> None:
    Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True)
    fake.script(fake.text_turn("A red pixel."))
    message, run = chat.send(alice, "What is this?", images=[_image()])
    assert wait_run(run.id).status == "completed"
    stored = Message.objects.get(id=message.id).content
    assert stored[0] == {"type": "text", "text": {"value": "What is this?", "annotations": []}}
    assert stored[1]["type"] == "image_file"
    f = File.objects.get(id=stored[1]["image_file"]["file_id"])
    assert (f.owner_id, f.purpose, f.content_type, f.filename) == (alice.pk, "vision", "image/png", "red.png")
    sent = fake.requests()[-1].messages[-1]
    assert sent["role"] == "user" and sent["content"][0] == {"type": "text", "text": "What is this?"}
    assert (
        sent["content"][1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png()).decode()
    )


def test_an_image_alone_is_a_message(executor, alice) -> None:
    Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True)
    message, run = chat.send(alice, "", images=[_image()])
    assert [p["type"] for p in Message.objects.get(id=message.id).content] == ["image_file"]
    wait_run(run.id)


@pytest.mark.django_db
def test_refusals_are_in_words_and_store_nothing(alice, settings) -> None:
    Assistant.objects.create(name="Helper", model="llama3.2", is_default=True)
    with pytest.raises(chat.ChatError, match="Helper can't look at images"):
        chat.send(alice, "look", images=[_image()])
    Assistant.objects.filter(is_default=True).update(accepts_images="yes")
    with pytest.raises(chat.ChatError, match="is not an image the assistant can look at") as err:
        chat.send(alice, "look", images=[_image("notes.png", b"plain words")])
    assert err.value.status == 415
    settings.VISION_MAX_IMAGE_BYTES = len(png()) - 1
    with pytest.raises(chat.ChatError, match="images may be at most") as err:
        chat.send(alice, "look", images=[_image()])
    assert err.value.status == 413
    with pytest.raises(chat.ChatError, match="Type a message first"):
        chat.send(alice, "   ")
    assert not File.objects.exists() and not Message.objects.exists()


def test_staff_set_it_in_the_admin(staff_client) -> None:
    from django.urls import reverse

    assistant = Assistant.objects.create(name="Helper", model="llama3.2", is_default=True)
    form = {
        "name": "Helper",
        "model": "llama3.2",
        "is_default": "on",
        "response_format_type": "auto",
        "accepts_images": "yes",
        # The function-endpoints inline's management form (no endpoint rows).
        "function_endpoints-TOTAL_FORMS": "0",
        "function_endpoints-INITIAL_FORMS": "0",
    }
    url = reverse("admin:assistants_app_assistant_change", args=[assistant.pk])
    assert "Model takes images" in staff_client.get(url).content.decode()
    assert staff_client.post(url, {**form, "_save": "Save"}).status_code == 302
    assert chat_uploads.accepts_images() is True
    # A form without the field (an older page, a script) keeps "auto".
    del form["accepts_images"]
    assert staff_client.post(url, {**form, "_save": "Save"}).status_code == 302
    assert Assistant.objects.get(pk=assistant.pk).accepts_images == "auto"


@pytest.mark.django_db
def test_the_chat_says_the_assistant_cant_look_at_images() -> None:
    # The chat page shows failure_words, not last_error: an image refusal (either kind) says so in
    # words, instead of the "it may be too long" every other invalid_prompt gets.
    from assistants_app.backends.refusals import image_refusal
    from assistants_app.runs import vision
    from assistants_app.services import chat_errors

    sent = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]
    by_model = image_refusal("llama3.2", sent, "image input is not supported")
    by_setting = vision.assistant_refusal(Assistant(name="H", accepts_images="no"), "llama3.2", sent)
    for error in (by_model, by_setting):
        assert error is not None
        run = {"status": "failed", "last_error": {"code": error.code, "message": error.message}}
        assert chat_errors.failure_words(run) == chat_errors.NO_IMAGES
    # Positive control: a prompt that is too long keeps its own words.
    too_long = {"status": "failed", "last_error": {"code": "invalid_prompt", "message": "too many tokens"}}
    assert chat_errors.failure_words(too_long) == chat_errors.TOO_LONG


# --- the page's one attach control: images to look at, other files to the tools ------------------
def _text(name: str = "notes.txt") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, b"meeting notes\n", content_type="text/plain")


@pytest.mark.django_db
def test_an_attached_image_goes_to_a_vision_assistant_as_an_image(alice) -> None:
    Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True, tools=[{"type": "file_search"}])
    message, _ = chat.send(alice, "Look", [_image("chart.png"), _text()])
    content = Message.objects.get(id=message.id).content
    assert [p["type"] for p in content] == ["text", "image_file"]
    shown = File.objects.get(id=content[1]["image_file"]["file_id"])
    assert shown.filename == "chart.png" and shown.purpose == "vision"
    attached = Message.objects.get(id=message.id).attachments
    assert [File.objects.get(id=a["file_id"]).filename for a in attached] == ["notes.txt"]
    assert attached[0]["tools"] == [{"type": "file_search"}]


@pytest.mark.django_db
def test_an_image_for_an_assistant_that_cant_look_is_a_file_for_its_tools(alice) -> None:
    Assistant.objects.create(
        name="Helper", model="llama3.2", is_default=True, tools=[{"type": "code_interpreter"}]
    )
    message, _ = chat.send(alice, "Plot it", [_image("chart.png")])
    msg = Message.objects.get(id=message.id)
    assert [p["type"] for p in msg.content] == ["text"]
    assert [File.objects.get(id=a["file_id"]).filename for a in msg.attachments] == ["chart.png"]


@pytest.mark.django_db
def test_a_vision_assistant_without_file_tools_takes_images_only(alice) -> None:
    Assistant.objects.create(name="Eyes", model="gpt-4o", is_default=True)
    thread = chat.conversation(alice)
    choice = chat.assistant_choice(thread)
    assert choice.can_attach and choice.takes_images and not choice.attachment_tools
    assert choice.accept == ".gif,.jpeg,.jpg,.png,.webp"
    assert "only images can be attached" in choice.attach_note
    message, _ = chat.send(alice, "", [_image()], thread=thread)  # an image alone is a message
    assert [p["type"] for p in Message.objects.get(id=message.id).content] == ["image_file"]
    Run.objects.filter(thread=thread).delete()
    Message.objects.filter(thread=thread).delete()
    with pytest.raises(chat.ChatError, match="can't read files"):
        chat.send(alice, "And this?", [_text()], thread=thread)
    assert not Message.objects.filter(thread=thread).exists()


@pytest.mark.django_db
def test_an_assistant_that_neither_reads_nor_looks_turns_attaching_off(alice, client) -> None:
    Assistant.objects.create(name="Plain", model="llama3.2", is_default=True)
    choice = chat.assistant_choice(chat.conversation(alice))
    assert not choice.can_attach and "attaching is off" in choice.attach_note
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert 'name="attachments" disabled' in html


@pytest.mark.django_db
def test_the_page_shows_the_image_a_user_sent(alice, bob, client) -> None:
    Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True)
    message, _ = chat.send(alice, "What is this?", [_image("cat.png")])
    fid = Message.objects.get(id=message.id).content[1]["image_file"]["file_id"]
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert f'<img src="/chat/files/{fid}/" alt="cat.png" width="1" height="1"' in html
    assert client.get(f"/chat/files/{fid}/").status_code == 200
    client.force_login(bob)  # the image is the user's own
    assert client.get(f"/chat/files/{fid}/").status_code == 404
