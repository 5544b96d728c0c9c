from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("v1/", include("assistants_app.api.urls")),
    path("", include("assistants_app.web.urls")),
]

# A database that cannot be had in time answers "busy" (503) in plain words, not a 500 page.
handler500 = "chatsite.errors.server_error"
