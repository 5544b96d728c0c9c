"""Vision through the official SDKs against the real server: image_file and image_url parts reach the
model as image parts of its Chat Completions request (image_file as a data: URL of the stored bytes,
detail passed through), what cannot be an image is refused when posted, and a model that refuses
images ends the run with a clear last_error."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from tests.api.test_node_sdk import node, run_node  # noqa: F401  (the `node` fixture)
from tests.fakes.upstream import error, text
from tests.support.images import png
from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CAT = "https://images.example.com/cat.jpg"


@pytest.fixture(scope="module")
def client(live: LiveServer) -> openai.OpenAI:
    return live.client()


@pytest.fixture(scope="module")
def assistant(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(model="gpt-4o")


def last_user_content(live: LiveServer) -> Any:
    return [m for m in live.upstream.requests[-1]["messages"] if m["role"] == "user"][-1]["content"]


def test_image_parts_reach_the_model(live: LiveServer, client: openai.OpenAI, assistant: Any) -> None:
    image = png(3, 2)
    f = client.files.create(file=("red.png", image), purpose="vision")
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "What colour is the first one?"},
            {"type": "image_file", "image_file": {"file_id": f.id, "detail": "high"}},
            {"type": "image_url", "image_url": {"url": CAT, "detail": "low"}},
        ],
    )
    live.upstream.script(text("Red."))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error
    content = last_user_content(live)
    assert content[0] == {"type": "text", "text": "What colour is the first one?"}
    assert content[1]["type"] == "image_url" and content[1]["image_url"]["detail"] == "high"
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == image  # the stored bytes, exactly
    assert content[2] == {"type": "image_url", "image_url": {"url": CAT, "detail": "low"}}
    # The images count in the prompt's tokens (a fixed estimate each: 765 at high detail, 85 low).
    assert run.usage is not None and run.usage.prompt_tokens > 0


def test_what_cannot_be_an_image_is_refused_when_posted(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    notes = client.files.create(file=("notes.png", b"not an image at all"), purpose="vision")
    cases = [
        ({"type": "image_file", "image_file": {"file_id": notes.id}}, "content[0].image_file.file_id"),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            "content[0].image_url.url",
        ),
        ({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, "content[0].image_url.url"),
    ]
    for part, param in cases:
        with pytest.raises(openai.BadRequestError) as err:
            client.beta.threads.messages.create(thread.id, role="user", content=[part])  # type: ignore[list-item]
        assert err.value.param == param, part
        assert err.value.code in ("invalid_image_file", "invalid_image_url")
    # data: URLs are refused pointing at the alternative, as OpenAI did.
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.create(
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,x"}}]}]
        )
    assert "image_file" in err.value.message and err.value.param == "messages[0].content[0].image_url.url"
    assert client.beta.threads.messages.list(thread.id).data == []


def run_looking_at_a_cat(client: openai.OpenAI, assistant_id: str) -> Any:
    """A thread whose one message asks to look at an image (by URL), run to its end."""
    return client.beta.threads.create_and_run_poll(
        assistant_id=assistant_id,
        thread={
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": CAT}},
                    ],
                }
            ]
        },
        poll_interval_ms=50,
    )


def test_a_model_that_refuses_images_fails_the_run_clearly(
    live: LiveServer, client: openai.OpenAI, assistant: Any
) -> None:
    said = "Invalid content type. image_url is only supported by certain models."
    live.upstream.script(error(400, said))
    run = run_looking_at_a_cat(client, assistant.id)
    assert run.status == "failed" and run.last_error is not None
    assert run.last_error.code == "invalid_prompt"
    assert run.last_error.message.startswith("The model gpt-4o does not accept images")
    assert said in run.last_error.message
    # Positive control: the same refusal without images in the request keeps the upstream's words.
    live.upstream.script(error(400, said))
    plain = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "look"}]},
        poll_interval_ms=50,
    )
    assert plain.status == "failed" and plain.last_error is not None
    assert plain.last_error.message == f"The upstream model server refused the request: {said}"


def test_an_assistant_set_not_to_take_images_fails_the_run_without_calling_the_model(
    live: LiveServer, client: openai.OpenAI
) -> None:
    a = client.beta.assistants.create(model="gpt-4o", name="Texts only")
    live.sql("UPDATE assistants_app_assistant SET accepts_images = 'no' WHERE id = ?", a.id)
    sent = len(live.upstream.requests)
    live.upstream.script(text("I see a cat."))  # what the model would say if it were asked
    run = run_looking_at_a_cat(client, a.id)
    assert run.status == "failed" and run.last_error is not None
    assert run.last_error.code == "invalid_prompt"
    assert run.last_error.message.startswith("The assistant 'Texts only' is set not to take images")
    assert len(live.upstream.requests) == sent  # the model was not asked
    # Positive control: the same assistant without images in the thread answers.
    plain = client.beta.threads.create_and_run_poll(
        assistant_id=a.id,
        thread={"messages": [{"role": "user", "content": "look"}]},
        poll_interval_ms=50,
    )
    assert plain.status == "completed", plain.last_error
    assert len(live.upstream.requests) == sent + 1


def test_node_sdk_image_file(live: LiveServer, node: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("IMAGE_B64", base64.b64encode(png()).decode())
    live.upstream.script(text("A red pixel."))
    out = run_node(node, live, "parity.mjs", "vision")
    assert out["status"] == "completed" and out["text"] == "A red pixel."
    part = last_user_content(live)[1]
    assert part["image_url"]["detail"] == "low"
    assert base64.b64decode(part["image_url"]["url"].split(",", 1)[1]) == png()
