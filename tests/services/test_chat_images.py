"""The chat page's images, server side (services/chat.py): offered for assistants whose model takes
images, sent as image_file parts of the user's message (stored with purpose "vision"), shown to the
model as image parts; refused in words otherwise, leaving nothing stored."""

from __future__ import annotations

import base64

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from assistants_app.backends import fake
from assistants_app.models import Assistant, File, Message
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
