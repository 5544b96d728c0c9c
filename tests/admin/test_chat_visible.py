"""The admin's "Offered in the chat" checkbox on the assistant editor (issue 12 item 10)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from assistants_app.models import Assistant
from assistants_app.services import assistants
from tests.admin.test_admin import ADD_ASSISTANT, assistant_form

pytestmark = pytest.mark.django_db


def _change_url(a: Assistant) -> str:
    return reverse("admin:assistants_app_assistant_change", args=[a.pk])


def test_staff_offer_an_assistant_in_the_chat_from_its_form(staff_client) -> None:
    form = staff_client.get(ADD_ASSISTANT).content.decode()
    assert 'name="chat_visible"' in form and "Offered in the chat" in form
    r = staff_client.post(ADD_ASSISTANT, assistant_form(name="Nova", chat_visible="on"))
    assert r.status_code == 302, r.content.decode()[:2000]
    nova = Assistant.objects.get(name="Nova")
    assert nova.chat_visible and nova in assistants.chat_visible_assistants()
    # Unticking it takes it out of the chat again.
    r = staff_client.post(_change_url(nova), assistant_form(name="Nova"))
    assert r.status_code == 302
    assert not Assistant.objects.get(id=nova.id).chat_visible
    assert nova not in assistants.chat_visible_assistants()


def test_an_api_users_assistant_cannot_be_offered_in_the_chat(staff_client, alice) -> None:
    mine = Assistant.objects.create(owner=alice, name="Mine", model="gpt-4o-mini")
    r = staff_client.post(_change_url(mine), assistant_form(name="Mine", chat_visible="on"))
    assert r.status_code == 200  # the form again, with the reason
    assert "belongs to an API user" in r.content.decode()
    assert not Assistant.objects.get(id=mine.id).chat_visible


def test_the_assistant_list_shows_and_filters_chat_visibility(staff_client) -> None:
    Assistant.objects.create(name="Nova", model="m", chat_visible=True)
    page = staff_client.get(reverse("admin:assistants_app_assistant_changelist")).content.decode()
    assert "column-chat_visible" in page and "chat_visible__exact" in page
