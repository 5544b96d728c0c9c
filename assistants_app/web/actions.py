"""Actions on messages (regenerate, edit and resend, continue, versions, feedback) and on
conversations (list and search, rename, delete, export). Each parses, calls a service, renders."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from assistants_app.errors import InvalidRequest, ThreadBusy
from assistants_app.models import Message
from assistants_app.services import chat, conversations, export, feedback

from . import notices
from .fragments import bubble, history_items, render_message, upsert
from .session import chat_login_required
from .views import (
    HtmxHttpRequest,
    _assistant_name,
    conversation_list,
    feedback_response,
    removals,
    run_started,
    thread_of,
)


# --- versions ----------------------------------------------------------------------------------------
@chat_login_required
@require_POST
def regenerate(request: HtmxHttpRequest) -> HttpResponse:
    try:
        thread = thread_of(request)
        change = chat.regenerate(request.user, thread, request.POST.get("message", ""))
    except chat.ChatError as exc:
        return feedback_response(request, exc.message, exc.status)
    assert change.run is not None
    return run_started(request, thread, change.run.id, *removals(change.removed), removed=change.removed)


@chat_login_required
@require_POST
def edit(request: HtmxHttpRequest) -> HttpResponse:
    try:
        thread = thread_of(request)
        change = chat.edit(
            request.user, thread, request.POST.get("message", ""), request.POST.get("text", "")
        )
    except chat.ChatError as exc:
        return feedback_response(request, exc.message, exc.status)
    assert change.run is not None and change.question is not None
    chat.attach_file_names([change.question])
    name, _ = _assistant_name()
    deco = chat.decorations(request.user, [change.question])
    question = upsert(render_message(bubble(change.question, deco), name))
    return run_started(
        request, thread, change.run.id, *removals(change.removed), question, removed=change.removed
    )


@chat_login_required
@require_POST
def continue_reply(request: HtmxHttpRequest) -> HttpResponse:
    try:
        thread = thread_of(request)
        change = chat.continue_reply(request.user, thread)
    except chat.ChatError as exc:
        return feedback_response(request, exc.message, exc.status)
    assert change.run is not None
    return run_started(request, thread, change.run.id)


@chat_login_required
@require_POST
def select_version(request: HtmxHttpRequest) -> HttpResponse:
    try:
        thread = thread_of(request)
        index = int(request.POST.get("to", "0"))
        change = chat.select_version(request.user, thread, request.POST.get("message", ""), index)
    except ValueError:
        return feedback_response(request, "No such version.", 400)
    except chat.ChatError as exc:
        return feedback_response(request, exc.message, exc.status)
    if not change.removed:
        return HttpResponse(status=204)
    messages = [i for i in change.shown if isinstance(i, Message)]
    chat.attach_file_names(messages)
    name, _ = _assistant_name()
    html = render_to_string(
        "chat/fragments.html#items",
        {
            "items": history_items(change.shown, chat.decorations(request.user, messages)),
            "assistant_name": name,
        },
    )
    # The new version takes the old one's place: it replaces the old version's first element,
    # and the old version's other elements go.
    first, rest = change.removed[0], change.removed[1:]
    response = HttpResponse(html + "".join(removals(rest)))
    response["HX-Retarget"] = f"#{first}"
    response["HX-Reswap"] = "outerHTML"
    return response


@chat_login_required
@require_POST
def rate(request: HtmxHttpRequest) -> HttpResponse:
    message_id = request.POST.get("message", "")
    try:
        row = feedback.rate(
            request.user, message_id, request.POST.get("rating", ""), request.POST.get("comment")
        )
    except feedback.FeedbackError as exc:
        return feedback_response(request, exc.message, exc.status)
    html = render_to_string(
        "chat/fragments.html#rating",
        {
            "b": {"id": message_id, "rating": row.rating if row else 0},
            "saved": bool(request.POST.get("comment")),
        },
    )
    return HttpResponse(html)


# --- conversations -------------------------------------------------------------------------------------
@chat_login_required
@require_GET
def conversation_list_view(request: HtmxHttpRequest) -> HttpResponse:
    page = conversations.listing(
        request.user, query=request.GET.get("q", ""), after=request.GET.get("after", "")
    )
    template = "chat/sidebar.html#entries" if request.GET.get("after") else "chat/sidebar.html#list"
    return HttpResponse(
        render_to_string(template, {"list": page, "current": request.GET.get("current", "")}, request=request)
    )


@chat_login_required
@require_POST
def rename(request: HtmxHttpRequest) -> HttpResponse:
    thread_id = request.POST.get("thread", "")
    try:
        thread = conversations.rename(request.user, thread_id, request.POST.get("title", ""))
    except conversations.NotYours as exc:
        raise Http404("No such conversation.") from exc
    except InvalidRequest as exc:
        return feedback_response(request, exc.message, 400)
    entry = conversations.Entry(thread.id, thread.title, thread.last_activity_at)
    current = request.POST.get("showing", "")
    html: str = render_to_string(
        "chat/sidebar.html#entry", {"entry": entry, "current": current}, request=request
    )
    if current == thread.id:
        html += format_html('<span id="conversation-title" hx-swap-oob="innerHTML">{}</span>', thread.title)
    return HttpResponse(html)


@chat_login_required
@require_POST
def delete(request: HtmxHttpRequest) -> HttpResponse:
    thread_id = request.POST.get("thread", "")
    try:
        conversations.delete(request.user, thread_id)
    except conversations.NotYours as exc:
        raise Http404("No such conversation.") from exc
    except ThreadBusy:
        return feedback_response(request, "The reply is still stopping. Try again in a moment.", 409)
    notices.notify(request.user.pk, {"type": "chat.deleted", "thread_id": thread_id})
    if request.POST.get("showing") == thread_id or not request.htmx:
        if not request.htmx:
            from django.shortcuts import redirect

            return redirect("chat")
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("chat")
        return response
    return HttpResponse(conversation_list(request, request.POST.get("showing", "")))


@chat_login_required
@require_GET
def export_conversation(request: HtmxHttpRequest, thread_id: str, ext: str) -> HttpResponse:
    try:
        thread = conversations.get(request.user, thread_id)
    except conversations.NotYours as exc:
        raise Http404("No such conversation.") from exc
    if ext == "md":
        body, kind = export.as_markdown(thread), "text/markdown; charset=utf-8"
    else:
        body, kind = export.as_json(thread), "application/json"
    response = HttpResponse(body, content_type=kind)
    response["Content-Disposition"] = f'attachment; filename="{export.filename(thread, ext)}"'
    return response
