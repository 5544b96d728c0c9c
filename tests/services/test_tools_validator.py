"""One validator of tool definitions for the API and the admin (services/tools.py).

Before it, the admin refused a function named `code_interpreter`/`file_search` and checked
`parameters` with jsonschema, while the API accepted both.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from assistants_app.admin.forms import parse_functions
from assistants_app.models import Assistant
from assistants_app.services import keys, tools

pytestmark = pytest.mark.django_db


def _fn(name: str, parameters: object = None) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": name}
    if parameters is not None:
        fn["parameters"] = parameters
    return {"type": "function", "function": fn}


BAD = [
    (_fn("code_interpreter"), "tools[0].function.name", "reserved"),
    (_fn("file_search"), "tools[0].function.name", "reserved"),
    (
        _fn("lookup", {"type": "object", "properties": {"q": {"type": "nonsense"}}}),
        "tools[0].function.parameters",
        "not a valid JSON Schema",
    ),
    (_fn("lookup", {"type": "string"}), "tools[0].function.parameters", "must describe an object"),
]


@pytest.fixture
def api(alice) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {keys.create_key(alice).raw}")


def _post(api: Client, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = api.post(path, body, content_type="application/json")
    return response.status_code, response.json()


@pytest.mark.parametrize(("tool", "param", "words"), BAD)
def test_the_api_refuses_what_the_admin_refuses(api, tool, param, words) -> None:
    status, body = _post(api, "/v1/assistants", {"model": "m", "tools": [tool]})
    assert status == 400, body
    assert body["error"]["param"] == param and words in body["error"]["message"]
    assert not Assistant.objects.exists()
    # The admin's form says the same about the same definition.
    _, errors = parse_functions(json.dumps([tool["function"]]))
    assert errors and words in errors[0]


@pytest.mark.parametrize(("tool", "param", "words"), BAD[:2] + BAD[3:])
def test_run_tool_overrides_are_checked_alike(api, alice, tool, param, words) -> None:
    _, assistant = _post(api, "/v1/assistants", {"model": "m"})
    status, body = _post(
        api,
        "/v1/threads/runs",
        {"assistant_id": assistant["id"], "tools": [tool], "thread": {"messages": []}},
    )
    assert status == 400 and body["error"]["param"] == param, body


def test_good_definitions_pass_both(api) -> None:
    good = _fn("get_weather", {"type": "object", "properties": {"city": {"type": "string"}}})
    status, body = _post(api, "/v1/assistants", {"model": "m", "tools": [good, {"type": "file_search"}]})
    assert status == 200, body
    assert parse_functions(json.dumps([good["function"]])) == ([good["function"]], [])
    assert tools.tool_problems([good, {"type": "code_interpreter"}]) == []


def test_problems_name_the_exact_parameter() -> None:
    problems = tools.tool_problems([_fn("a"), _fn("a"), {"type": "web_search"}])
    assert [(p.param, p.code) for p in problems] == [
        ("tools[1].function.name", None),
        ("tools[2].type", "unsupported_tool"),
    ]
