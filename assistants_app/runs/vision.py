"""Images in the prompt: a user message's `image_file` and `image_url` parts become Chat Completions
image parts (`{"type": "image_url", "image_url": {"url", "detail"?}}`), its text parts text parts.

- `image_file`: the stored file, read from storage and sent as a `data:` URL of its sniffed type. Only
  images (PNG, JPEG, GIF, WebP, by their bytes) of at most VISION_MAX_IMAGE_BYTES are accepted when
  the message is posted (`image_problem`, called by services/threads.py); any purpose will do, as on
  OpenAI (which documents `vision`).
- `image_url`: the URL as given (http or https; `data:` URLs are refused when the message is posted,
  as OpenAI did, pointing at image_file instead).
- `detail` is passed through.

One prompt carries at most VISION_MAX_PROMPT_IMAGE_BYTES of image files (OpenAI's limit is 50 MB a
request): the thread is read newest first, so the newest images go, and an older one beyond the budget,
or one whose file was deleted or expired since, is replaced by a note in words saying so.

An assistant whose "accepts images" setting is "no" (the admin's "Model takes images") fails a
run whose prompt would carry images with a clear `last_error` before calling the model
(`assistant_refusal`); "auto" and "yes" send them, and a model that refuses them fails the run in
words too (backends/refusals.py).

Images in assistant messages (the code interpreter's charts) stay text notes: Chat Completions takes
images from users only.

Token counts: an image counts IMAGE_TOKENS (765: what OpenAI bills a 1024x1024 image at high detail)
or, with detail "low", IMAGE_TOKENS_LOW (85): a fixed estimate, since the image is not decoded.
"""

from __future__ import annotations

import base64
from typing import Any

from django.conf import settings

from assistants_app.backends.base import BackendError
from assistants_app.backends.refusals import sends_images
from assistants_app.models import Assistant, File, Thread

IMAGE_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
IMAGE_TOKENS = 765
IMAGE_TOKENS_LOW = 85
IMAGE_URL_SCHEMES = ("http://", "https://")

# Model names (the part after the last "/", lower-cased) known to take images, for assistants whose
# "accepts images" setting is "auto"; staff set it to yes or no in the admin for anything else.
_VISION_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-4-turbo", "o1", "o3", "o4")
_VISION_WORDS = ("vision", "llava", "-vl", "pixtral", "minicpm-v", "moondream", "llama4", "gemma3", "gemma-3",
                 "claude-3", "claude-sonnet-4", "claude-opus-4", "gemini")  # fmt: skip
_TEXT_ONLY_WORDS = ("o1-mini", "o3-mini", "gpt-4o-audio", "gpt-4o-realtime", "gpt-4o-transcribe",
                    "gpt-4o-mini-tts", "gemma3:270m", "gemma3:1b", "gemma-3-270m", "gemma-3-1b")  # fmt: skip


def known_to_take_images(model: str) -> bool:
    name = model.rsplit("/", 1)[-1].lower()
    if any(word in name for word in _TEXT_ONLY_WORDS):
        return False
    return name.startswith(_VISION_PREFIXES) or any(word in name for word in _VISION_WORDS)


def assistant_refusal(
    assistant: Assistant | None, model: str, messages: list[dict[str, Any]]
) -> BackendError | None:
    """The run's error when its assistant is set not to take images and the prompt has some."""
    if assistant is None or assistant.accepts_images != Assistant.AcceptsImages.NO:
        return None
    if not sends_images(messages):
        return None
    name = f"The assistant {assistant.name!r}" if assistant.name else "The assistant"
    return BackendError(
        "invalid_prompt",
        f"{name} is set not to take images (its model {model} does not accept them), and the "
        "thread has images: remove them, or use an assistant whose model takes images.",
    )


def image_problem(content_type: str, size: int) -> str | None:
    """Why a stored file cannot be an image_file part, in words; None when it can."""
    if content_type not in IMAGE_CONTENT_TYPES:
        return f"it is not a PNG, JPEG, GIF or WebP image (its content is {content_type or 'unknown'})"
    limit = int(settings.VISION_MAX_IMAGE_BYTES)
    if size > limit:
        return f"it is {size} bytes; images may be at most {limit} bytes (VISION_MAX_IMAGE_BYTES)"
    return None


def url_problem(url: str) -> str | None:
    if url.lower().startswith("data:"):
        return "data: URLs are not accepted: upload the image (POST /v1/files) and send an image_file part"
    if not url.lower().startswith(IMAGE_URL_SCHEMES):
        return "the URL must start with http:// or https://"
    return None


def image_parts(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in content if p.get("type") in ("image_file", "image_url")]


def image_tokens(content: list[dict[str, Any]]) -> int:
    total = 0
    for part in image_parts(content):
        detail = (part.get(part["type"]) or {}).get("detail")
        total += IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS
    return total


class PromptImages:
    """Turns one prompt's user messages into Chat Completions parts, within the prompt's image budget.
    Call `parts` newest message first."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.remaining = int(settings.VISION_MAX_PROMPT_IMAGE_BYTES)

    def parts(self, role: str, content: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """The message's parts, or None when it has no image to send (then it goes as plain text)."""
        if role != "user" or not image_parts(content):
            return None
        files = self._files(
            [p["image_file"].get("file_id", "") for p in content if p.get("type") == "image_file"]
        )
        # Newest message first, and within one message its later images first.
        converted: list[dict[str, Any]] = []
        for part in reversed(content):
            kind = part.get("type")
            if kind == "text":
                converted.append({"type": "text", "text": (part.get("text") or {}).get("value", "")})
            elif kind == "image_url":
                converted.append(_image_part(part["image_url"].get("url", ""), part["image_url"]))
            elif kind == "image_file":
                converted.append(self._file_part(part["image_file"], files))
        converted.reverse()
        return converted

    def _files(self, file_ids: list[str]) -> dict[str, File]:
        if not file_ids:
            return {}
        owner = Thread.objects.filter(id=self.thread_id).values("owner_id")
        rows = File.objects.live().filter(id__in=file_ids, owner_id__in=owner)
        return {f.id: f for f in rows}

    def _file_part(self, spec: dict[str, Any], files: dict[str, File]) -> dict[str, Any]:
        file_id = spec.get("file_id", "")
        f = files.get(file_id)
        if f is None:
            return _note(f"[image {file_id}: the file was deleted or has expired]")
        problem = image_problem(f.content_type, f.bytes)
        if problem is not None:
            return _note(f"[image {file_id} left out: {problem}]")
        if f.bytes > self.remaining:
            return _note(
                f"[image {file_id} left out: the prompt's images reached VISION_MAX_PROMPT_IMAGE_BYTES]"
            )
        with f.data.open("rb") as handle:
            data = handle.read(f.bytes + 1)
        if len(data) != f.bytes:
            return _note(f"[image {file_id}: the stored file is damaged]")
        self.remaining -= f.bytes
        url = f"data:{f.content_type};base64,{base64.b64encode(data).decode('ascii')}"
        return _image_part(url, spec)


def _image_part(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    image: dict[str, Any] = {"url": url}
    if spec.get("detail"):
        image["detail"] = spec["detail"]
    return {"type": "image_url", "image_url": image}


def _note(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}
