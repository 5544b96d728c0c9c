from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path, re_path

from . import actions, views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.chat_page, name="chat"),
    path("c/<str:thread_id>/", views.conversation_page, name="conversation"),
    re_path(
        r"^c/(?P<thread_id>thread_\w+)/export\.(?P<ext>md|json)$",
        actions.export_conversation,
        name="chat_export",
    ),
    path("chat/history/", views.chat_history, name="chat_history"),
    path("chat/send/", views.chat_send, name="chat_send"),
    path("chat/stop/", views.chat_stop, name="chat_stop"),
    path("chat/retry/", views.chat_retry, name="chat_retry"),
    path("chat/new/", views.chat_new, name="chat_new"),
    path("chat/regenerate/", actions.regenerate, name="chat_regenerate"),
    path("chat/edit/", actions.edit, name="chat_edit"),
    path("chat/continue/", actions.continue_reply, name="chat_continue"),
    path("chat/version/", actions.select_version, name="chat_version"),
    path("chat/feedback/", actions.rate, name="chat_feedback"),
    path("chat/conversations/", actions.conversation_list_view, name="chat_conversations"),
    path("chat/rename/", actions.rename, name="chat_rename"),
    path("chat/delete/", actions.delete, name="chat_delete"),
    path("chat/files/<str:file_id>/", views.chat_file, name="chat_file"),
    path("favicon.ico", views.favicon),
    path("accounts/signup/", views.signup, name="signup"),
    # Log out only by POST (Django's LogoutView refuses GET).
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("django.contrib.auth.urls")),
]
