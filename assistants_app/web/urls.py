from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path

from . import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.chat_page, name="chat"),
    path("chat/history/", views.chat_history, name="chat_history"),
    path("chat/send/", views.chat_send, name="chat_send"),
    path("chat/stop/", views.chat_stop, name="chat_stop"),
    path("chat/retry/", views.chat_retry, name="chat_retry"),
    path("chat/new/", views.chat_new, name="chat_new"),
    path("chat/files/<str:file_id>/", views.chat_file, name="chat_file"),
    path("accounts/signup/", views.signup, name="signup"),
    # Log out only by POST (Django's LogoutView refuses GET).
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("django.contrib.auth.urls")),
]
