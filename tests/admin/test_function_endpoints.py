"""The assistant editor's function endpoints: attaching one (inline, in the same save as the function),
the checks on it, and the warning when the chat's assistant has a function nothing answers."""

from __future__ import annotations

import html
import json
from typing import Any

import pytest
from django.urls import reverse

from assistants_app.models import Assistant, FunctionEndpoint
from tests.admin.test_admin import ADD_ASSISTANT, assistant_form

pytestmark = pytest.mark.django_db

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
BOOK = {"name": "book_table", "parameters": {"type": "object", "properties": {}}}


def with_endpoints(*rows: dict[str, Any], initial: int = 0, **overrides: Any) -> dict[str, Any]:
    data = assistant_form(**overrides)
    data["function_endpoints-TOTAL_FORMS"] = str(len(rows))
    data["function_endpoints-INITIAL_FORMS"] = str(initial)
    for i, row in enumerate(rows):
        fields = {
            "function_name": "get_weather",
            "url": "https://weather.example.com/v1/now",
            "method": "POST",
            "headers": "",
            "timeout_seconds": "10",
            "max_response_bytes": "65536",
            **row,
        }
        data.update({f"function_endpoints-{i}-{k}": v for k, v in fields.items()})
    return data


def change_url(a: Assistant) -> str:
    return reverse("admin:assistants_app_assistant_change", args=[a.pk])


def shown_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_an_endpoint_is_attached_in_the_same_save_as_its_function(staff_client) -> None:
    response = staff_client.post(
        ADD_ASSISTANT,
        with_endpoints(
            {"headers": "Authorization: WEATHER_AUTH\nX-Tenant: WEATHER_TENANT", "timeout_seconds": "4.5"},
            functions=json.dumps([WEATHER]),
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    a = Assistant.objects.get()
    # API clients see exactly the function they would have sent: nothing about the endpoint.
    assert a.tools == [{"type": "function", "function": WEATHER}]
    ep = FunctionEndpoint.objects.get(assistant=a)
    assert (ep.function_name, ep.url, ep.method) == (
        "get_weather",
        "https://weather.example.com/v1/now",
        "POST",
    )
    assert ep.header_env == {"Authorization": "WEATHER_AUTH", "X-Tenant": "WEATHER_TENANT"}
    assert (ep.timeout_seconds, ep.max_response_bytes) == (4.5, 65536)
    page = staff_client.get(change_url(a)).content.decode()
    assert "Authorization: WEATHER_AUTH\nX-Tenant: WEATHER_TENANT" in html.unescape(page)


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ({"function_name": "get_wether"}, "function_name", "no function named 'get_wether'"),
        ({"url": "ftp://weather.example.com/"}, "url", "Use an http:// or https:// URL"),
        ({"url": "https://bob:pw@weather.example.com/"}, "url", "no user name or password"),
        ({"url": "http://169.254.169.254/latest/"}, "url", "is not a public address"),
        ({"url": "http://10.0.0.8:8080/"}, "url", "FUNCTION_ENDPOINTS_ALLOWED_PRIVATE"),
        ({"headers": "Authorization: Bearer sk-live-123"}, "headers", "not an environment variable name"),
        ({"headers": "Host: WEATHER_HOST"}, "headers", "set by the server"),
        ({"headers": "just-a-line"}, "headers", "Line 1: write"),
        ({"timeout_seconds": "0"}, "timeout_seconds", "more than 0"),
        ({"timeout_seconds": "1000"}, "timeout_seconds", "at most 120"),
        ({"max_response_bytes": "99999999"}, "max_response_bytes", "1 to 1048576"),
    ],
)
def test_bad_endpoints_are_refused_next_to_the_field(staff_client, row, field, words) -> None:
    response = staff_client.post(ADD_ASSISTANT, with_endpoints(row, functions=json.dumps([WEATHER])))
    assert response.status_code == 200
    (form,) = response.context["inline_admin_formsets"][0].formset.forms
    assert words in " ".join(form.errors.get(field, [])), form.errors
    assert not Assistant.objects.exists() and not FunctionEndpoint.objects.exists()


def test_a_private_address_is_accepted_when_the_setting_allows_it(staff_client, settings) -> None:
    settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE = "10.0.0.0/8"
    response = staff_client.post(
        ADD_ASSISTANT, with_endpoints({"url": "http://10.0.0.8:8080/"}, functions=json.dumps([WEATHER]))
    )
    assert response.status_code == 302
    assert FunctionEndpoint.objects.get().url == "http://10.0.0.8:8080/"


def test_one_endpoint_per_function(staff_client) -> None:
    response = staff_client.post(ADD_ASSISTANT, with_endpoints({}, {}, functions=json.dumps([WEATHER])))
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.non_form_errors()
    assert errors == ["Please correct the duplicate data for function_name."]
    assert not FunctionEndpoint.objects.exists()


# --- the chat warning -----------------------------------------------------------------------------
def test_the_chats_assistant_warns_about_functions_without_an_endpoint(staff_client) -> None:
    functions = json.dumps([WEATHER, BOOK])
    response = staff_client.post(
        ADD_ASSISTANT, with_endpoints({}, functions=functions, is_default="on"), follow=True
    )
    warning = "The chat uses this assistant, and its function tool(s) “book_table” have no endpoint"
    assert any(warning in m for m in shown_messages(response))
    a = Assistant.objects.get()
    page = staff_client.get(change_url(a))
    assert any(warning in m for m in shown_messages(page))
    assert warning in html.unescape(page.content.decode())

    # Attaching an endpoint to the last one silences it.
    data = assistant_form(functions=functions, is_default="on") | _existing_row(a)
    response = staff_client.post(change_url(a), data, follow=True)
    assert response.status_code == 200 and FunctionEndpoint.objects.count() == 2
    assert not any("no endpoint" in m for m in shown_messages(response))
    assert not any("no endpoint" in m for m in shown_messages(staff_client.get(change_url(a))))


def test_assistants_the_chat_does_not_use_do_not_warn(staff_client) -> None:
    a = Assistant.objects.create(name="API only", model="m", tools=[{"type": "function", "function": BOOK}])
    assert not any("no endpoint" in m for m in shown_messages(staff_client.get(change_url(a))))
    a.is_default = True
    a.save()
    assert any("no endpoint" in m for m in shown_messages(staff_client.get(change_url(a))))  # control


def _existing_row(a: Assistant) -> dict[str, str]:
    """The change form's inline data: the endpoint already stored (initial forms come first), and a
    new one for book_table."""
    ep = FunctionEndpoint.objects.get(assistant=a)
    return {
        "function_endpoints-TOTAL_FORMS": "2",
        "function_endpoints-INITIAL_FORMS": "1",
        "function_endpoints-0-id": str(ep.pk),
        "function_endpoints-0-assistant": a.pk,
        "function_endpoints-0-function_name": ep.function_name,
        "function_endpoints-0-url": ep.url,
        "function_endpoints-0-method": ep.method,
        "function_endpoints-0-headers": "",
        "function_endpoints-0-timeout_seconds": str(ep.timeout_seconds),
        "function_endpoints-0-max_response_bytes": str(ep.max_response_bytes),
        "function_endpoints-1-function_name": "book_table",
        "function_endpoints-1-url": "https://book.example.com/",
        "function_endpoints-1-method": "POST",
        "function_endpoints-1-headers": "",
        "function_endpoints-1-timeout_seconds": "10",
        "function_endpoints-1-max_response_bytes": "65536",
    }
