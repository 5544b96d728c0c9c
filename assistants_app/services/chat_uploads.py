"""The chat's rules for what a message may carry: attachments for the tools (type, size) and images
for the model (sniffed type, size, the assistant's "accepts images" setting), in words for the page.
Storing them is services/files.py's; the storage quota's words are here too."""

from __future__ import annotations

from pathlib import PurePath

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from assistants_app.lib.sniff import SNIFF_BYTES, sniff_content_type
from assistants_app.models import Assistant
from assistants_app.runs import vision

from . import files
from .chat_errors import ChatError

# What the code interpreter and file search can read; anything else is refused up front rather
# than failing later inside a run.
ALLOWED_EXTENSIONS = frozenset(
    {
        ".txt", ".md", ".csv", ".tsv", ".json", ".jsonl", ".xml", ".yaml", ".yml", ".html", ".htm",
        ".pdf", ".docx", ".pptx", ".xlsx", ".py", ".js", ".ts", ".java", ".c", ".cpp", ".h", ".rb",
        ".go", ".rs", ".sh", ".sql", ".tex", ".css", ".log", ".png", ".jpg", ".jpeg", ".gif", ".webp",
    }
)  # fmt: skip
# Images one message may show the model (the API allows any number, within the prompt's budget).
MAX_IMAGES = 10


def check_upload(upload: UploadedFile[bytes]) -> None:
    """The chat's own limits on an attachment, in words; storing it is files.store_file's."""
    name = files.display_name(upload.name or "")
    if upload.size is not None and upload.size > settings.FILE_UPLOAD_MAX_BYTES:
        raise ChatError(
            f"“{name}” is {human(upload.size)}; the limit is {human(settings.FILE_UPLOAD_MAX_BYTES)}.",
            status=413,
        )
    if upload.size == 0:
        raise ChatError(f"“{name}” is empty.")
    suffix = PurePath(name).suffix.lower()
    if suffix not in ALLOWED_EXTENSIONS:
        allowed = ", ".join(sorted(ALLOWED_EXTENSIONS))
        raise ChatError(
            f"Files of type “{suffix or name}” can't be attached. Allowed: {allowed}.", status=415
        )


def quota_error(exc: files.StorageQuotaExceeded) -> ChatError:
    return ChatError(
        f"There is no room left for this file: you have used {human(exc.used)} of your "
        f"{human(exc.quota)} of storage, and it needs {human(exc.size)}. "
        "An administrator can remove old files or raise the limit.",
        status=413,
    )


def human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def accepts_images(assistant: Assistant | None = None) -> bool:
    """Whether the chat offers image attachments: the (default) assistant's "accepts images" setting,
    and for "auto" whether its model is known to take images (runs/vision.py)."""
    if assistant is None:
        assistant = Assistant.objects.filter(is_default=True).only("model", "accepts_images").first()
        if assistant is None:
            return False
    if assistant.accepts_images == Assistant.AcceptsImages.AUTO:
        return vision.known_to_take_images(assistant.model)
    return assistant.accepts_images == Assistant.AcceptsImages.YES


IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})


def _sniffed_type(upload: UploadedFile[bytes]) -> str:
    head = b""
    for chunk in upload.chunks(SNIFF_BYTES):
        head = chunk[:SNIFF_BYTES]
        break
    upload.seek(0)
    return sniff_content_type(head, files.display_name(upload.name or ""))


def is_image(upload: UploadedFile[bytes]) -> bool:
    """Whether the file is an image a model can look at, by its bytes (not its name or the client's
    content type): the rule is runs/vision.py's."""
    return _sniffed_type(upload) in vision.IMAGE_CONTENT_TYPES


def split_images(
    uploads: list[UploadedFile[bytes]], assistant: Assistant
) -> tuple[list[UploadedFile[bytes]], list[UploadedFile[bytes]]]:
    """The page has one attach control: for an assistant that accepts images, the images among the
    files go to the model to look at, the rest to the tools; otherwise every file goes to the tools."""
    if not uploads or not accepts_images(assistant):
        return uploads, []
    tools: list[UploadedFile[bytes]] = []
    images: list[UploadedFile[bytes]] = []
    for upload in uploads:
        (images if is_image(upload) else tools).append(upload)
    return tools, images


def check_image(upload: UploadedFile[bytes]) -> None:
    """An image to show the model, in words: the rule is runs/vision.py's, on its sniffed type."""
    name = files.display_name(upload.name or "")
    if not is_image(upload):
        raise ChatError(
            f"“{name}” is not an image the assistant can look at (PNG, JPEG, GIF or WebP).", status=415
        )
    limit = int(settings.VISION_MAX_IMAGE_BYTES)
    if (upload.size or 0) > limit:
        raise ChatError(
            f"“{name}” is {human(upload.size or 0)}; images may be at most {human(limit)}.", status=413
        )
