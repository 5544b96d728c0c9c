"""In-process tests of the API's parts: validation, keys, auth, pagination, rate limit, SSE framing,
management commands. Fast; the live-server suites cover the same through the SDK."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.http import QueryDict
from django.test import RequestFactory
from django.utils import timezone

from assistants_app.api import auth, ratelimit, request_specs, sse
from assistants_app.api.auth import authenticate
from assistants_app.api.errors import RateLimited, Unauthorized
from assistants_app.api.pagination import page
from assistants_app.api.validation import Metadata, Query, Str
from assistants_app.errors import InvalidRequest
from assistants_app.lib.sniff import sniff_content_type
from assistants_app.models import ApiKey, Thread
from assistants_app.runs.events import RunEvent
from assistants_app.serializers import without_file_search_content
from assistants_app.services import keys
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread


def param_of(fn, *args):
    with pytest.raises(InvalidRequest) as err:
        fn(*args)
    return err.value.param


# --- validation ---------------------------------------------------------------------------------------
def test_metadata_rules() -> None:
    m = Metadata()
    assert m.check({"a": "b"}, "metadata") == {"a": "b"}
    assert param_of(m.check, {"modified_today": True}, "metadata") == "metadata.modified_today"
    assert param_of(m.check, {"n": None}, "metadata") == "metadata.n"
    assert param_of(m.check, {str(i): "v" for i in range(17)}, "metadata") == "metadata"
    assert param_of(m.check, {"k" * 65: "v"}, "metadata") == "metadata." + "k" * 65
    assert param_of(m.check, {"k": "v" * 513}, "metadata") == "metadata.k"
    assert m.check({"k" * 64: "v" * 512}, "metadata")


def test_nested_paths_and_unknown_keys() -> None:
    body = {"model": "m", "tools": [{"type": "function", "function": {"name": "ok", "strict": "yes"}}]}
    assert param_of(request_specs.ASSISTANT_CREATE.check, body, "") == "tools[0].function.strict"
    assert param_of(request_specs.ASSISTANT_CREATE.check, {"model": "m", "surprise": 1}, "") == "surprise"
    assert (
        param_of(request_specs.ASSISTANT_CREATE.check, {"model": "m", "temperature": True}, "")
        == "temperature"
    )
    assert param_of(request_specs.ASSISTANT_CREATE.check, {"model": "m", "tools": [None]}, "") == "tools[0]"
    # null means "not given" for optional fields
    assert request_specs.ASSISTANT_CREATE.check({"model": "m", "name": None}, "") == {"model": "m"}
    run = {"assistant_id": "a", "truncation_strategy": {"type": "last_messages", "last_messages": 0}}
    assert param_of(request_specs.RUN_CREATE.check, run, "") == "truncation_strategy.last_messages"
    assert (
        request_specs.RUN_CREATE.check({"assistant_id": "a", "tool_choice": "required"}, "")["tool_choice"]
        == "required"
    )
    assert (
        param_of(request_specs.RUN_CREATE.check, {"assistant_id": "a", "tool_choice": 3}, "") == "tool_choice"
    )
    assert (
        param_of(request_specs.RUN_CREATE.check, {"assistant_id": "a", "max_prompt_tokens": 2**63}, "")
        == "max_prompt_tokens"
    )
    # What PostgreSQL can't store is a 400, not a 500.
    assert param_of(request_specs.ASSISTANT_CREATE.check, {"model": "m\x00"}, "") == "model"
    assert param_of(request_specs.ASSISTANT_CREATE.check, {"model": "m", "name": "\ud800"}, "") == "name"
    assert (
        param_of(request_specs.ASSISTANT_CREATE.check, {"model": "m", "metadata": {"k": "a\x00"}}, "")
        == "metadata.k"
    )
    bad_fn = {
        "model": "m",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"d": ["\x00"]}}}],
    }
    assert param_of(request_specs.ASSISTANT_CREATE.check, bad_fn, "") == "tools[0].function.parameters.d[0]"
    assert (
        param_of(request_specs.SUBMIT_TOOL_OUTPUTS.check, {"tool_outputs": [{"tool_call_id": "c"}]}, "")
        == "tool_outputs[0].output"
    )


def test_query_parsing() -> None:
    q = request_specs.MESSAGE_LIST_QUERY
    assert q.check(QueryDict("limit=5&order=asc&run_id=run_1")) == {
        "limit": 5,
        "order": "asc",
        "run_id": "run_1",
    }
    assert param_of(q.check, QueryDict("limit=abc")) == "limit"
    assert param_of(q.check, QueryDict("limit=0")) == "limit"
    assert param_of(q.check, QueryDict("foo=1")) == "foo"
    include = request_specs.STEP_INCLUDE.check(
        QueryDict(f"include[]={request_specs.INCLUDE_FILE_SEARCH_CONTENT}")
    )
    assert include == {"include": [request_specs.INCLUDE_FILE_SEARCH_CONTENT]}
    assert param_of(request_specs.STEP_INCLUDE.check, QueryDict("include=x")) == "include"
    assert param_of(request_specs.FILE_LIST_QUERY.check, QueryDict("before=file-1")) == "before"
    assert request_specs.FILE_LIST_QUERY.check(QueryDict("limit=10000")) == {"limit": 10000}
    assert Query({"s": Str()}).parameters()[0]["name"] == "s"


def test_schema_mirrors_validation() -> None:
    schema = request_specs.ASSISTANT_CREATE.base_schema()
    assert schema["required"] == ["model"] and schema["additionalProperties"] is False
    meta = schema["properties"]["metadata"]
    assert (
        meta["type"] == ["object", "null"]
        and meta["maxProperties"] == 16
        and meta["additionalProperties"] == {"type": "string", "maxLength": 512}
    )
    assert schema["properties"]["temperature"] == {"type": ["number", "null"], "minimum": 0, "maximum": 2}


# --- keys and auth ----------------------------------------------------------------------------------------
def test_generated_keys_and_weak_keys() -> None:
    raw = keys.generate_key()
    assert raw.startswith("sk-as-") and len(raw) == 46 and not keys.is_weak_key(raw)
    for weak in ("sk-xxx", "test", "short", "sk-as-" + "a" * 40, "x" * 31, "password"):
        assert keys.is_weak_key(weak), weak


def _request(key: str | None):
    headers: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return RequestFactory().get("/v1/assistants", **headers)


@pytest.mark.django_db
def test_authenticate_hashes_revokes_and_touches_last_used(alice) -> None:
    auth._touched.clear()  # row ids repeat across tests; this memo is per process
    new = keys.create_key(alice, name="ci")
    row = ApiKey.objects.get(id=new.key.id)
    assert row.digest == keys.digest(new.raw) and new.raw not in (row.digest, row.prefix)
    assert authenticate(_request(new.raw)).user == alice
    first_use = ApiKey.objects.get(id=row.id).last_used_at
    assert first_use is not None
    authenticate(_request(new.raw))
    assert ApiKey.objects.get(id=row.id).last_used_at == first_use  # not rewritten on every request
    ApiKey.objects.filter(id=row.id).update(last_used_at=timezone.now() - timedelta(minutes=5))
    authenticate(_request(new.raw))
    assert ApiKey.objects.get(id=row.id).last_used_at < first_use  # type: ignore[operator]  # this process wrote it under a minute ago
    auth._touched.clear()  # ... a minute later
    authenticate(_request(new.raw))
    assert ApiKey.objects.get(id=row.id).last_used_at > first_use  # type: ignore[operator]
    for bad in (None, "sk-as-" + "Zz9" * 14, "sk-xxx"):
        with pytest.raises(Unauthorized):
            authenticate(_request(bad))
    keys.revoke_key(row.id)
    with pytest.raises(Unauthorized):
        authenticate(_request(new.raw))
    alice.is_active = False
    alice.save()
    with pytest.raises(Unauthorized):
        authenticate(_request(keys.create_key(alice).raw))
    with pytest.raises(InvalidRequest):
        keys.create_key(alice, raw="sk-test")


@pytest.mark.django_db
def test_key_commands(alice) -> None:
    out = StringIO()
    call_command("create_api_key", "alice", "--name", "laptop", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    row = ApiKey.objects.get(digest=keys.digest(raw))
    assert row.name == "laptop" and row.user == alice
    out = StringIO()
    call_command("revoke_api_key", row.prefix, stdout=out)
    assert ApiKey.objects.get(id=row.id).revoked_at is not None
    out = StringIO()
    call_command("create_api_key", "newbie", "--create-user", stdout=out)
    assert out.getvalue().strip().splitlines()[-1].startswith("sk-as-")


def test_rate_limit(settings) -> None:
    ratelimit.reset()
    settings.API_RATE_LIMIT_PER_MINUTE = 2
    ratelimit.check(1)
    ratelimit.check(1)
    with pytest.raises(RateLimited) as err:
        ratelimit.check(1)
    assert 0 < err.value.retry_after <= 60
    ratelimit.check(2)  # per key
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    ratelimit.check(1)
    ratelimit.reset()


# --- pagination -------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_pagination_cursors(alice) -> None:
    ids = [Thread.objects.create(owner=alice).id for _ in range(5)]
    qs = Thread.objects.filter(owner=alice)

    def render(t: Thread) -> dict[str, Any]:
        return {"id": t.id}

    def got(**q) -> tuple[list[str], bool]:
        p = page(qs, q, render)
        return [d["id"] for d in p["data"]], p["has_more"]

    assert got(limit=2) == (ids[::-1][:2], True)
    assert got(limit=2, after=ids[3]) == ([ids[2], ids[1]], True)
    assert got(limit=2, after=ids[1]) == ([ids[0]], False)
    assert got(limit=2, before=ids[1]) == ([ids[3], ids[2]], True)
    assert got(limit=3, before=ids[2]) == ([ids[4], ids[3]], False)
    assert got(limit=2, order="asc") == (ids[:2], True)
    assert got(limit=2, order="asc", before=ids[3]) == (ids[1:3], True)
    assert got(limit=10, order="asc", after=ids[0], before=ids[4]) == (ids[1:4], False)
    empty = page(qs.none(), {}, render)
    assert empty["data"] == [] and empty["first_id"] is None and empty["has_more"] is False


# --- SSE ---------------------------------------------------------------------------------------------------
def test_sse_frames_and_end_of_stream(event_log) -> None:
    event_log.publish("run_x", "thread.run.created", {"id": "run_x", "object": "thread.run"})
    event_log.publish(
        "run_x", "thread.run.completed", {"id": "run_x", "object": "thread.run", "status": "completed"}
    )

    async def collect() -> list[bytes]:
        return [chunk async for chunk in sse.run_events("run_x", prelude=[("thread.created", {"id": "t"})])]

    chunks = asyncio.run(collect())
    # Events that were ready together may share a chunk (one write); the frames are the same.
    frames = [f + b"\n\n" for f in b"".join(chunks).split(b"\n\n") if f]
    assert frames[0] == b'event: thread.created\ndata: {"id":"t"}\n\n'
    assert frames[1].startswith(b"event: thread.run.created\ndata: ")
    assert frames[-2].startswith(b"event: thread.run.completed\n")
    assert frames[-1] == b"event: done\ndata: [DONE]\n\n"
    assert chunks[-1] == sse.DONE
    err = sse.error_frame("boom")
    assert err.startswith(b"event: error\ndata: ")
    assert json.loads(err.split(b"data: ", 1)[1])["error"]["message"] == "boom"


def test_sse_strips_file_search_content_unless_included() -> None:
    step = {
        "id": "step_1",
        "step_details": {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": "c",
                    "type": "file_search",
                    "file_search": {"results": [{"file_id": "f", "content": [{"text": "x"}]}]},
                }
            ],
        },
    }
    stripped = without_file_search_content("thread.run.step.completed", step)
    assert "content" not in stripped["step_details"]["tool_calls"][0]["file_search"]["results"][0]
    assert without_file_search_content("thread.message.delta", step) is step


def test_content_sniffing() -> None:
    assert sniff_content_type(b"%PDF-1.7", "x.txt") == "application/pdf"
    assert sniff_content_type(b"\x89PNG\r\n\x1a\n...", "a.pdf") == "image/png"
    assert sniff_content_type(b"PK\x03\x04", "d.docx").endswith("wordprocessingml.document")
    assert sniff_content_type(b"hello", "n.md") == "text/markdown"
    assert sniff_content_type(b"hello", "n") == "text/plain"
    assert sniff_content_type(b"\x00\x01\x02", "a.txt") == "application/octet-stream"
    assert sniff_content_type("héllo".encode()[:2], "a.txt") == "text/plain"


def test_sse_failure_becomes_error_event(monkeypatch) -> None:
    async def broken(run_id: str, after: str = "", **kwargs: Any):
        yield [RunEvent("1", "thread.run.created", {"id": run_id})]
        raise RuntimeError("log unreachable")

    monkeypatch.setattr(sse, "follow_batches", broken)

    async def collect() -> list[bytes]:
        return [chunk async for chunk in sse.run_events("run_y")]

    chunks = asyncio.run(collect())
    assert chunks[0].startswith(b"event: thread.run.created\n")
    assert chunks[1].startswith(b'event: error\ndata: {"error":')
    assert chunks[-1] == sse.DONE


def test_unexpected_exception_is_json_500_not_retried() -> None:
    from assistants_app.api.routing import Operation, handle

    def boom(ctx):
        raise RuntimeError("bug")

    op = Operation("GET", "/boom", boom, "boom", "", "", public=True)
    response = handle(op, ["GET"], RequestFactory().get("/v1/boom"), {})
    assert response.status_code == 500
    assert json.loads(response.content)["error"]["type"] == "server_error"  # type: ignore[attr-defined]
    assert response["x-should-retry"] == "false"


@pytest.mark.django_db
def test_oversized_json_body_is_413(client, alice, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    raw = keys.create_key(alice).raw
    body = json.dumps({"metadata": {"k": "v" * 2000}})
    response = client.post(
        "/v1/threads", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_every_response_has_a_request_id(client) -> None:
    first = client.get("/v1/openapi.json")["x-request-id"]
    second = client.get("/v1/assistants")["x-request-id"]  # a 401
    assert first.startswith("req_") and second.startswith("req_") and first != second


@pytest.mark.django_db
def test_objects_match_their_published_schemas(alice) -> None:
    """Every field objects.py renders is in schemas.py and the other way round (closed schemas)."""
    import jsonschema_rs

    from assistants_app.api.response_schemas import COMPONENTS
    from assistants_app.models import Assistant, File, RunStep
    from assistants_app.serializers import assistant_obj, file_obj, message_obj, run_obj, step_obj, thread_obj

    def check(name: str, value: dict[str, Any]) -> None:
        schema = {**COMPONENTS[name], "$defs": {}}
        jsonschema_rs.validate(schema, value)
        assert set(value) == set(COMPONENTS[name]["properties"]), name

    assistant = Assistant.objects.create(owner=alice, model="m")
    thread = create_thread(alice, messages=[{"role": "user", "content": "hi"}])
    run = start_run(thread, assistant)
    step = RunStep.objects.create(
        run=run,
        thread_id_ref=thread.id,
        assistant_ref=assistant.id,
        type="message_creation",
        step_details={"type": "message_creation", "message_creation": {"message_id": "m"}},
    )
    f = File.objects.create(owner=alice, filename="a.txt", purpose="assistants")
    check("Assistant", assistant_obj(assistant))
    check("Thread", thread_obj(thread))
    check("Message", message_obj(thread.messages.first()))  # type: ignore[arg-type]
    check("Run", run_obj(run))
    check("RunStep", step_obj(step))
    check("OpenAIFile", file_obj(f))


@pytest.mark.django_db
def test_impossible_ids_in_paths_are_404(client, alice) -> None:
    raw = keys.create_key(alice).raw
    for bad in ("thread%00x", "t" * 65):
        response = client.get(f"/v1/threads/{bad}", HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert response.status_code == 404, bad
