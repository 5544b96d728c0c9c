"""What a page of chat messages shows besides their text: version pagers, the user's ratings, the
names and sizes of images, and the name of the assistant that wrote each reply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import imagesize

from assistants_app.models import Assistant, File, Message

from . import feedback, lookups, versions


@dataclass(frozen=True)
class Image:
    file_id: str
    name: str
    width: int | None = None
    height: int | None = None


@dataclass
class Decorations:
    pagers: dict[str, versions.Pager] = field(default_factory=dict)
    ratings: dict[str, int] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)  # by file id
    assistant_names: dict[str, str] = field(default_factory=dict)  # by assistant id


def decorations(user: Any, messages: list[Message]) -> Decorations:
    """Version pagers, the user's ratings, image names and sizes (so an image takes its place before
    it loads and the page does not jump) and the name of the assistant that wrote each reply."""
    replies = [m for m in messages if m.role == "assistant"]
    image_ids = {
        p["image_file"]["file_id"]
        for m in messages  # the code interpreter's charts, and the images a user showed the model
        for p in m.content or []
        if isinstance(p, dict) and p.get("type") == "image_file"
    }
    images: dict[str, Image] = {}
    for f in lookups.live_files(user).filter(id__in=image_ids) if image_ids else []:
        images[f.id] = Image(f.id, f.filename, *_image_size(f))
    assistant_ids = {m.assistant_id for m in replies if m.assistant_id}
    names = (
        dict(Assistant.objects.filter(id__in=assistant_ids).values_list("id", "name"))
        if assistant_ids
        else {}
    )
    return Decorations(
        pagers=versions.pagers(messages),
        ratings=feedback.ratings(user, [m.id for m in replies]),
        images=images,
        assistant_names={k: v for k, v in names.items() if v},
    )


def _image_size(f: File) -> tuple[int | None, int | None]:
    try:
        with f.data.open("rb") as fh:
            width, height = imagesize.get(fh)
    except (OSError, ValueError):
        return None, None
    return (width, height) if width > 0 and height > 0 else (None, None)
