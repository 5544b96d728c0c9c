"""Which assistant answers in a chat conversation, and what an attached file can be used for.

Staff offer assistants to chat users (assistants.chat_visible_assistants: the default one, and the
staff-managed ones marked "chat_visible"). A user picks one per conversation; the pick is stored on
the conversation's thread (`Thread.chat_assistant`, null = the default). It is checked when it is
made and again for every run: an assistant staff stopped offering is never used again. The
conversation then falls back to the default, and `Choice.withdrawn` names the one it lost, so the
page says so (on load and with every reply) until the user picks another. The pick itself is kept:
if staff offer that assistant again, the conversation goes back to it.

Errors are PickError, in words for the page (services/chat.py turns them into ChatError).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from assistants_app.models import Assistant, Thread

from . import assistants, chat_uploads

# The tools an attached file can be given, when the conversation's assistant has them.
FILE_TOOLS = ("file_search", "code_interpreter")
NO_DEFAULT = (
    "No assistant is configured for the chat yet. An administrator can create one with "
    "`manage.py bootstrap` or in the admin."
)


class PickError(Exception):
    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def display_name(assistant: Assistant) -> str:
    return assistant.name or "Assistant"


def attachment_tools(assistant: Assistant) -> list[dict[str, Any]]:
    """The tools an attachment gets in a run of `assistant`: those of FILE_TOOLS it has ([] = it
    can't read files). Giving a file a tool the assistant lacks would store it for nothing."""
    has = {t.get("type") for t in assistant.tools or [] if isinstance(t, dict)}
    return [{"type": kind} for kind in FILE_TOOLS if kind in has]


def default() -> Assistant:
    assistant = Assistant.objects.filter(is_default=True).first()
    if assistant is None:
        raise PickError(NO_DEFAULT, status=503)
    return assistant


@dataclass(frozen=True)
class Choice:
    assistant: Assistant  # answers the conversation's next message
    options: list[Assistant] = field(default_factory=list)  # what the user may pick, the default first
    withdrawn: str = ""  # the name of the picked assistant staff no longer offer ("" if none)

    @property
    def name(self) -> str:
        return display_name(self.assistant)

    @property
    def attachment_tools(self) -> list[dict[str, Any]]:
        return attachment_tools(self.assistant)

    @property
    def withdrawn_note(self) -> str:
        if not self.withdrawn:
            return ""
        return (
            f"{self.withdrawn} is no longer available in the chat, so {self.name} answers in this "
            "conversation from now on."
        )

    @property
    def takes_images(self) -> bool:
        return chat_uploads.accepts_images(self.assistant)

    @property
    def can_attach(self) -> bool:
        return bool(self.attachment_tools) or self.takes_images

    @property
    def accept(self) -> str:
        """The attach control's `accept`: every allowed type, or only images for an assistant that
        can look at images but has no tool to read files."""
        kinds = chat_uploads.ALLOWED_EXTENSIONS if self.attachment_tools else chat_uploads.IMAGE_EXTENSIONS
        return ",".join(sorted(kinds))

    @property
    def attach_note(self) -> str:
        """Why files can't be attached here ("" when they can), in words, before anything is sent."""
        if self.attachment_tools:
            return ""
        if self.takes_images:
            return (
                f"{self.name} can look at images but can't read other files (it has neither file "
                "search nor the code interpreter), so only images can be attached here."
            )
        note = (
            f"{self.name} can't read files (it has neither file search nor the code interpreter), "
            "so attaching is off in this conversation."
        )
        readers = [display_name(a) for a in self.options if attachment_tools(a)]
        if readers:
            note += f" To attach files, pick {' or '.join(readers[:3])}."
        return note


def offered() -> list[Assistant]:
    """The assistants a user may pick from, the default first, then by name."""
    return list(assistants.chat_visible_assistants().order_by("-is_default", "name", "id"))


def choice(thread: Thread) -> Choice:
    """The assistant of `thread`'s next run: its pick while that is offered, else the default."""
    options = offered()
    picked = next((a for a in options if a.id == thread.chat_assistant_id), None)
    if picked is not None:
        return Choice(picked, options)
    fallback = next((a for a in options if a.is_default), None)
    if fallback is None:
        raise PickError(NO_DEFAULT, status=503)
    withdrawn = ""
    if thread.chat_assistant_id:
        gone = Assistant.objects.filter(id=thread.chat_assistant_id).only("name").first()
        withdrawn = display_name(gone) if gone is not None else ""
    return Choice(fallback, options, withdrawn)


def pick(thread: Thread, assistant_id: str) -> Choice:
    """Make `assistant_id` the conversation's assistant from its next run on. Only an offered one:
    a hidden assistant, someone's API assistant and a made-up id are all refused alike."""
    if not isinstance(assistant_id, str) or not assistant_id:
        raise PickError("Pick an assistant from the list.")
    assistant = assistants.chat_visible_assistants().filter(id=assistant_id[:40]).first()
    if assistant is None:
        raise PickError("That assistant isn't available in the chat. Pick one from the list.")
    stored = None if assistant.is_default else assistant
    Thread.objects.filter(id=thread.id).update(chat_assistant=stored)
    thread.chat_assistant = stored
    return choice(thread)
