"""Upstream refusals that deserve their own words in a run's `last_error`.

A model that does not take images answers a request with image parts with a 400 whose wording depends
on the server: OpenAI's "Invalid content type. image_url is only supported by certain models.",
llama.cpp's "image input is not supported", vLLM's "... is not a multimodal model", LM Studio's "Model
does not support images". The run then fails with `invalid_prompt` and a message that names the
model and says it does not accept images, followed by what the upstream said.
"""

from __future__ import annotations

from typing import Any

from .base import BackendError

_IMAGE_WORDS = ("image", "vision", "multimodal", "multi-modal", "mmproj")


def sends_images(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") == "image_url" for p in m["content"])
        for m in messages
    )


def image_refusal(model: str, messages: list[dict[str, Any]], detail: str) -> BackendError | None:
    """The run's error for a refused request that sent images and was refused over them, else None."""
    if not sends_images(messages) or not any(word in detail.lower() for word in _IMAGE_WORDS):
        return None
    return BackendError(
        "invalid_prompt",
        f"The model {model} does not accept images: remove the images from the thread, or use a model "
        f"that takes images. (The upstream said: {detail})",
    )
