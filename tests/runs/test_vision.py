"""Images in prompts (runs/vision.py), in-process: user messages' image parts become Chat Completions
image parts within the prompt's byte budget; what cannot be sent is said in words; messages are
checked when posted; token estimates; the refusal of a text-only model; the known-models table."""

from __future__ import annotations

import base64

import pytest
from django.core.files.base import ContentFile

from assistants_app.backends.refusals import image_refusal, sends_images
from assistants_app.errors import InvalidRequest
from assistants_app.models import Assistant, Run
from assistants_app.runs import state, vision
from assistants_app.runs.context import MESSAGE_OVERHEAD, build_prompt, count_tokens, message_tokens
from assistants_app.services import files
from assistants_app.services.threads import create_thread, post_message
from tests.support.images import png

pytestmark = pytest.mark.django_db


@pytest.fixture
def thread(alice):
    return create_thread(alice)


def _run(thread, alice) -> Run:
    a = Assistant.objects.create(owner=alice, model="gpt-4o")
    return state.create_run(thread=thread, assistant=a, assistant_ref=a.id, model=a.model, instructions="")


def _image(alice, width: int = 1, name: str = "p.png", purpose: str = "vision"):
    return files.store_file(alice.pk, ContentFile(png(width)), filename=name, purpose=purpose)


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_user_images_become_image_parts_with_their_detail(thread, alice):
    f = _image(alice)
    post_message(
        thread,
        role="user",
        content=[
            {"type": "text", "text": "What is in these?"},
            {"type": "image_file", "image_file": {"file_id": f.id, "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/dog.jpg"}},
        ],
    )
    prompt = build_prompt(_run(thread, alice), [], [])
    assert prompt.messages[-1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": _data_url(png()), "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/dog.jpg"}},
        ],
    }
    # Positive control: a text-only message still goes as a plain string.
    other = create_thread(alice)
    post_message(other, role="user", content=[{"type": "text", "text": "and now?"}])
    assert build_prompt(_run(other, alice), [], []).messages[-1] == {"role": "user", "content": "and now?"}


def test_the_prompt_image_budget_keeps_the_newest_images(thread, alice, settings):
    images = [_image(alice, width=w) for w in (30, 31, 32)]
    settings.VISION_MAX_PROMPT_IMAGE_BYTES = images[1].bytes + images[2].bytes
    for f in images:
        post_message(thread, role="user", content=[{"type": "image_file", "image_file": {"file_id": f.id}}])
    sent = [m["content"][0] for m in build_prompt(_run(thread, alice), [], []).messages]
    assert sent[0]["type"] == "text" and "VISION_MAX_PROMPT_IMAGE_BYTES" in sent[0]["text"]
    assert [p["image_url"]["url"] for p in sent[1:]] == [_data_url(png(31)), _data_url(png(32))]


def test_a_deleted_image_is_said_not_sent(thread, alice):
    f = _image(alice)
    post_message(thread, role="user", content=[{"type": "image_file", "image_file": {"file_id": f.id}}])
    file_id = f.id
    files.delete_file(f)
    part = build_prompt(_run(thread, alice), [], []).messages[-1]["content"][0]
    assert part == {"type": "text", "text": f"[image {file_id}: the file was deleted or has expired]"}


def test_assistant_images_stay_text_notes(thread, alice):
    # The code interpreter's charts are image_file parts of assistant messages: Chat Completions
    # takes images from users only.
    f = _image(alice, purpose="assistants_output")
    post_message(thread, role="user", content="plot it")
    post_message(thread, role="assistant", content=[{"type": "image_file", "image_file": {"file_id": f.id}}])
    last = build_prompt(_run(thread, alice), [], []).messages[-1]
    assert last == {"role": "assistant", "content": f"[image file {f.id}]"}


def test_messages_are_checked_when_posted(thread, alice, settings):
    text = files.store_file(alice.pk, ContentFile(b"just words"), filename="x.png", purpose="vision")
    with pytest.raises(InvalidRequest) as err:
        post_message(
            thread, role="user", content=[{"type": "image_file", "image_file": {"file_id": text.id}}]
        )
    assert err.value.code == "invalid_image_file" and err.value.param == "content[0].image_file.file_id"
    assert "not a PNG, JPEG, GIF or WebP image (its content is text/plain)" in err.value.message
    big = _image(alice, width=400)
    settings.VISION_MAX_IMAGE_BYTES = big.bytes - 1
    with pytest.raises(InvalidRequest) as err:
        post_message(thread, role="user", content=[{"type": "image_file", "image_file": {"file_id": big.id}}])
    assert "VISION_MAX_IMAGE_BYTES" in err.value.message
    for url in ("data:image/png;base64,iVBORw0KGgo=", "file:///etc/passwd", "ftp://x/y.png"):
        with pytest.raises(InvalidRequest) as err:
            post_message(thread, role="user", content=[{"type": "image_url", "image_url": {"url": url}}])
        assert err.value.code == "invalid_image_url" and err.value.param == "content[0].image_url.url"
    # Positive control: within the limit, an image file is accepted.
    settings.VISION_MAX_IMAGE_BYTES = big.bytes
    post_message(thread, role="user", content=[{"type": "image_file", "image_file": {"file_id": big.id}}])


def test_images_count_a_fixed_estimate():
    low = [{"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]
    high = [{"type": "image_file", "image_file": {"file_id": "file-x"}}]
    text_of_low = count_tokens("[image https://x/y.png]")
    assert message_tokens(low) == text_of_low + MESSAGE_OVERHEAD + vision.IMAGE_TOKENS_LOW
    assert vision.image_tokens(high) == vision.IMAGE_TOKENS == 765


def test_a_refusal_over_images_names_the_model():
    with_image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]
    said = "Invalid content type. image_url is only supported by certain models."
    error = image_refusal("gpt-3.5-turbo", with_image, said)
    assert error is not None and error.code == "invalid_prompt"
    assert (
        error.message.startswith("The model gpt-3.5-turbo does not accept images") and said in error.message
    )
    # Positive controls: no images sent, or a refusal about something else, keep the upstream's words.
    assert image_refusal("m", [{"role": "user", "content": "hi"}], said) is None
    assert image_refusal("m", with_image, "temperature must be at most 2") is None
    assert sends_images(with_image) and not sends_images([{"role": "user", "content": "image"}])


@pytest.mark.parametrize(
    ("model", "takes"),
    [
        ("gpt-4o-mini", True),
        ("gpt-4.1", True),
        ("o3-mini", False),
        ("gpt-3.5-turbo", False),
        ("llava:13b", True),
        ("Qwen/Qwen2.5-VL-7B-Instruct", True),
        ("llama3.2-vision", True),
        ("llama3.2", False),
        ("gemma3:270m", False),
    ],
)
def test_known_models(model: str, takes: bool):
    assert vision.known_to_take_images(model) is takes
