"""Issue 9, items 7 (API keys) and 8: bad-key bursts are throttled per address, and absurdly deep
JSON is a 400, never a 500. In-process, through Django's test client and the real /v1 views."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from django.test import Client

from assistants_app.api import validation
from assistants_app.errors import InvalidRequest
from assistants_app.services import keys

pytestmark = pytest.mark.django_db


def _client(raw: str, address: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}", REMOTE_ADDR=address)


def _address() -> str:
    # A fresh address per test: the counter lives in the cache (Redis in phase 2), not the database.
    return f"198.51.100.{secrets.randbelow(250) + 1}"


def _bad_key() -> str:
    return keys.generate_key()  # well-formed, just not issued


# --- 8a / 8b: deep JSON ---------------------------------------------------------------------------
def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_100000_deep_json_body_is_400(alice) -> None:
    client = _client(keys.create_key(alice).raw, _address())
    response = client.post("/v1/assistants", _nested(100_000), content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "nested_too_deeply"


def test_900_deep_function_parameters_are_400_and_a_sane_schema_passes(alice) -> None:
    client = _client(keys.create_key(alice).raw, _address())
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(900):
        deep = {"type": "object", "properties": {"x": deep}}
    tool: dict[str, Any] = {"type": "function", "function": {"name": "f", "parameters": deep}}
    response = client.post(
        "/v1/assistants", json.dumps({"model": "m", "tools": [tool]}), content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "nested_too_deeply"
    assert response.json()["error"]["param"] == "tools"
    # Positive control: a realistic nested schema is stored.
    sane = {
        "type": "object",
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}},
    }
    tool["function"]["parameters"] = sane
    ok = client.post(
        "/v1/assistants", json.dumps({"model": "m", "tools": [tool]}), content_type="application/json"
    )
    assert ok.status_code == 200, ok.content
    assert ok.json()["tools"][0]["function"]["parameters"] == sane


def test_params_check_is_iterative_at_any_depth() -> None:
    # Called directly (as any future caller might), a deep value is a 400-style error, not a RecursionError.
    deep: dict[str, Any] = {}
    for _ in range(5000):
        deep = {"k": deep}
    with pytest.raises(InvalidRequest) as err:
        validation.AnyObject().check(deep, "tools[0].function.parameters")
    assert err.value.param == "tools[0].function.parameters"
    shallow = {"k": {"k": "v"}}
    assert validation.AnyObject().check(shallow, "p") == shallow


# --- 7: bad API keys ---------------------------------------------------------------------------------
# Phase 2: the count lives in Redis.
def test_a_burst_of_bad_keys_from_one_address_is_429_and_a_valid_key_is_not_slowed(alice, settings) -> None:
    settings.API_KEY_FAILURE_LIMIT = 5
    settings.API_KEY_FAILURE_WINDOW_SECONDS = 60
    address, other = _address(), "203.0.113.7"
    statuses = [_client(_bad_key(), address).get("/v1/assistants").status_code for _ in range(5)]
    assert statuses == [401] * 5  # positive control: under the limit, the usual 401
    throttled = _client(_bad_key(), address).get("/v1/assistants")
    assert throttled.status_code == 429
    error = throttled.json()["error"]
    assert error["code"] == "too_many_invalid_api_keys" and error["type"] == "requests"
    assert 1 <= int(throttled["retry-after"]) <= 60
    assert throttled["x-should-retry"] == "false"
    # Weak keys count too; a missing key (not a guess) does not.
    assert _client("sk-xxx", address).get("/v1/assistants").status_code == 429
    assert Client(REMOTE_ADDR=address).get("/v1/assistants").status_code == 401
    # A valid key from the same address is served as usual, and does not count.
    good = keys.create_key(alice).raw
    assert all(_client(good, address).get("/v1/assistants").status_code == 200 for _ in range(3))
    # Another address is not affected.
    assert _client(_bad_key(), other).get("/v1/assistants").status_code == 401


def test_forwarded_for_does_not_dodge_the_throttle(settings) -> None:
    # Without TRUSTED_PROXIES, X-Forwarded-For is the client's own claim and is ignored.
    settings.API_KEY_FAILURE_LIMIT = 3
    address = _address()
    for i in range(4):
        response = Client(
            HTTP_AUTHORIZATION=f"Bearer {_bad_key()}", REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR=f"10.0.0.{i}"
        ).get("/v1/assistants")
    assert response.status_code == 429
