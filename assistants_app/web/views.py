"""The chat page, a conversation's pane and history, and sending. Message and conversation actions
are in actions.py, the account pages in accounts.py.

Views parse, call chat/services, and render. They never call the model: sending starts a run that
the executor picks up, and the page's websocket streams it.
"""

from __future__ import annotations

import secrets
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from assistants_app.models import Thread
from assistants_app.serializers import run_obj
from assistants_app.server.bodies import accepts_uploads
from assistants_app.services import (
    chat,
    chat_assistants,
    chat_decorations,
    chat_uploads,
    conversations,
    lookups,
)

from . import notices
from .fragments import (
    Notice,
    bubble,
    ending_notice,
    follow,
    history_items,
    render_message,
    run_controls,
    run_notice,
    upsert,
)
from .session import chat_login_required

# Images that a browser may show inline from our origin; anything else (SVG included: it can carry
# script) is served as a download.
INLINE_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _tab(request: HttpRequest) -> str:
    """The id of the browser tab that made the request (see consumers.chat_run_started)."""
    return (request.headers.get("X-Chat-Tab") or request.POST.get("tab", ""))[:64]


def _assistant_name() -> tuple[str, str]:
    try:
        return chat.default_assistant().name or "Assistant", ""
    except chat.ChatError as exc:
        return "Assistant", exc.message


def feedback_response(request: HtmxHttpRequest, message: str, status: int) -> HttpResponse:
    if not request.htmx:
        messages.error(request, message)
        return redirect("chat")
    return alert_fragment(message, status)


def alert_fragment(message: str, status: int) -> HttpResponse:
    """A refusal as the chat page shows it: it swaps this in and keeps the typed text."""
    return HttpResponse(format_html('<p class="form-error" role="alert">{}</p>', message), status=status)


def thread_of(request: HtmxHttpRequest, param: str = "thread") -> Thread:
    """The conversation a request names (POST or GET `thread`), owner-checked; the most recent one
    when it names none (forms of the one-conversation era)."""
    thread_id = request.POST.get(param) or request.GET.get(param) or ""
    return chat.conversation(request.user, thread_id or None)


def conversation_list(request: HttpRequest, current: str, *, oob: bool = False) -> str:
    from django.template.loader import render_to_string

    page = conversations.listing(request.user)
    return render_to_string(
        "chat/sidebar.html#list", {"list": page, "current": current, "oob": oob}, request=request
    )


# --- the page --------------------------------------------------------------------------------------
def _choice_context(thread: Thread) -> dict[str, Any]:
    """The conversation's assistant: the picker, the attach control and what they must say."""
    try:
        choice: chat_assistants.Choice | None = chat.assistant_choice(thread)
    except chat.ChatError as exc:
        return {"choice": None, "assistant_name": "Assistant", "setup_error": exc.message}
    assert choice is not None
    return {"choice": choice, "assistant_name": choice.name, "setup_error": ""}


def picker_fragments(
    request: HtmxHttpRequest,
    thread: Thread,
    *,
    oob: bool,
    error: str = "",
    picked: dict[str, Any] | None = None,
) -> str:
    """The picker (out of band if `oob`) and the attach control with its note (always out of band),
    as they are now: after a pick, and with every reply (an assistant staff stopped offering shows
    here as soon as the conversation falls back). `picked`: _choice_context(thread), if the caller
    has just made it."""
    from django.template.loader import render_to_string

    picked = picked or _choice_context(thread)
    context = {**picked, "thread": thread, "oob": oob, "swap": True, "picker_error": error}
    context.update(max_upload_bytes=settings.FILE_UPLOAD_MAX_BYTES, accept=_accept())
    return "".join(
        render_to_string(f"chat/page.html#{name}", context, request=request)
        for name in ("picker", "attach", "attach_note")
    )


def _accept() -> str:
    return ",".join(sorted(chat_uploads.ALLOWED_EXTENSIONS))


def _pane_context(request: HtmxHttpRequest, thread: Thread) -> dict[str, Any]:
    active = lookups.active_run(thread)
    page = chat.history(thread, exclude_run=active.id if active else None)
    picked = _choice_context(thread)
    setup_error = picked["setup_error"]
    notice = Notice(setup_error)
    if active is None and not setup_error:
        last = chat.last_run(thread)
        if last is not None:
            notice = ending_notice(run_obj(last))
    tab = secrets.token_urlsafe(9)
    ws_url = f"/ws/chat/?tab={tab}&thread={thread.id}" + (f"&run={active.id}" if active else "")
    return {
        "thread": thread,
        "page": page,
        "items": history_items(page.items(), chat_decorations.decorations(request.user, page.messages)),
        **picked,
        "run_id": active.id if active else None,
        **notice.context(),
        "tab": tab,
        "ws_url": ws_url,
        "max_upload_bytes": settings.FILE_UPLOAD_MAX_BYTES,
        "accept": _accept(),
    }


def _render_conversation(request: HtmxHttpRequest, thread: Thread) -> HttpResponse:
    context = _pane_context(request, thread)
    if request.htmx and request.htmx.target == "chat":
        # Switching conversations: only the pane (its socket reconnects for the new thread).
        return render(request, "chat/page.html#pane", context)
    context["list"] = conversations.listing(request.user)
    context["current"] = thread.id
    return render(request, "chat/page.html", context)


@chat_login_required
@require_GET
def chat_page(request: HtmxHttpRequest) -> HttpResponse:
    return _render_conversation(request, conversations.current(request.user))


@chat_login_required
@require_GET
def conversation_page(request: HtmxHttpRequest, thread_id: str) -> HttpResponse:
    try:
        thread = conversations.get(request.user, thread_id)
    except conversations.NotYours as exc:
        raise Http404("No such conversation.") from exc
    return _render_conversation(request, thread)


@chat_login_required
@require_GET
def chat_history(request: HtmxHttpRequest) -> HttpResponse:
    before = request.GET.get("before", "")
    if not before.startswith("msg_") or len(before) > 40:
        return HttpResponse("A message id is needed in `before`.", status=400)
    if request.GET.get("thread"):
        try:
            thread: Thread | None = conversations.get(request.user, request.GET["thread"])
        except conversations.NotYours:
            thread = None
    else:
        thread = conversations.current(request.user, create=False)
    if thread is None:
        return HttpResponse("")
    active = lookups.active_run(thread)
    page = chat.history(thread, before=before, exclude_run=active.id if active else None)
    name, _ = _assistant_name()
    items = history_items(page.items(), chat_decorations.decorations(request.user, page.messages))
    return render(
        request,
        "chat/fragments.html#history",
        {"page": page, "items": items, "assistant_name": name, "thread": thread},
    )


# --- sending -----------------------------------------------------------------------------------------
def run_started(
    request: HtmxHttpRequest, thread: Thread, run_id: str, *parts: str, removed: list[str] | None = None
) -> HttpResponse:
    notices.notify(
        request.user.pk,
        {
            "type": "chat.run_started",
            "run_id": run_id,
            "thread_id": thread.id,
            "tab": _tab(request),
            # Elements of a version this run replaces: other tabs showing them take them away too.
            "removed": list(removed or [])[:200],
        },
    )
    if not request.htmx:
        return redirect("chat")  # the conversation just became the most recent one
    # The socket is told to follow the run only after this response has put the question on the
    # page, so the reply always lands below it. The list moves the conversation to the top.
    return HttpResponse(
        "".join(
            [
                *parts,
                run_controls(run_id),
                run_notice(),
                follow(run_id),
                conversation_list(request, thread.id, oob=True),
                # The first question names the conversation: the pane's heading too.
                format_html(
                    '<span id="conversation-title" hx-swap-oob="innerHTML">{}</span>',
                    thread.title or "New conversation",
                ),
            ]
        )
    )


@accepts_uploads
@chat_login_required
@require_POST
def chat_send(request: HtmxHttpRequest) -> HttpResponse:
    try:
        thread = thread_of(request)
        message, run = chat.send(
            request.user, request.POST.get("text", ""), request.FILES.getlist("attachments"), thread=thread
        )
    except chat.ChatError as exc:
        return feedback_response(request, exc.message, exc.status)
    chat.attach_file_names([message])
    picked = _choice_context(thread)  # one read of the offered assistants for the question and the picker
    question = upsert(render_message(bubble(message), picked["assistant_name"]))
    return run_started(
        request, thread, run.id, question, picker_fragments(request, thread, oob=True, picked=picked)
    )


@chat_login_required
@require_POST
def chat_assistant(request: HtmxHttpRequest) -> HttpResponse:
    """The user picks the conversation's assistant (the picker's select, HTMX on change)."""
    try:
        thread = thread_of(request)
    except chat.ChatError as exc:
        return feedback_response(request, exc.message, exc.status)
    try:
        chat.pick_assistant(request.user, thread, request.POST.get("assistant", ""))
    except chat.ChatError as exc:
        if not request.htmx:
            return feedback_response(request, exc.message, exc.status)
        # The picker as it really is (what is offered may have changed), with the refusal.
        return HttpResponse(
            picker_fragments(request, thread, oob=False, error=exc.message), status=exc.status
        )
    if not request.htmx:
        return redirect("conversation", thread.id)
    return HttpResponse(picker_fragments(request, thread, oob=False))


@chat_login_required
@require_POST
def chat_retry(request: HtmxHttpRequest) -> HttpResponse:
    try:
        thread = thread_of(request)
        change = chat.regenerate(request.user, thread)
    except chat.ChatError as exc:
        return feedback_response(request, exc.message, exc.status)
    assert change.run is not None
    return run_started(request, thread, change.run.id, *removals(change.removed), removed=change.removed)


def removals(element_ids: list[str]) -> list[str]:
    # "delete:#id" with an empty fragment: app.js's replace-by-id never sees an element to swap in.
    return [f'<div hx-swap-oob="delete:#{eid}"></div>' for eid in element_ids]


@chat_login_required
@require_POST
def chat_stop(request: HtmxHttpRequest) -> HttpResponse:
    try:
        run = chat.stop(request.user, request.POST.get("run_id", ""))
    except chat.ChatError as exc:
        return feedback_response(request, exc.message, exc.status)
    if not request.htmx:
        return redirect("chat")
    active = not run.is_terminal
    return HttpResponse(run_controls(run.id if active else None, "Stopping…"))


@chat_login_required
@require_POST
def chat_new(request: HtmxHttpRequest) -> HttpResponse:
    thread = conversations.start_new(request.user)
    url = reverse("conversation", args=[thread.id])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@chat_login_required
@require_GET
def chat_file(request: HtmxHttpRequest, file_id: str) -> FileResponse:
    f = lookups.live_files(request.user).filter(id=file_id).first()
    if f is None or not f.data:
        raise Http404("No such file.")
    suffix = PurePath(f.filename).suffix.lower()
    inline_type = INLINE_IMAGE_TYPES.get(suffix)
    response = FileResponse(
        f.data.open("rb"),
        as_attachment=inline_type is None,
        filename=f.filename,
        content_type=inline_type or "application/octet-stream",
    )
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def favicon(request: HttpRequest) -> HttpResponse:
    from django.http import HttpResponsePermanentRedirect
    from django.templatetags.static import static

    # Resolved per request: the hashed name exists only once collectstatic has run.
    return HttpResponsePermanentRedirect(static("favicon.svg"))
