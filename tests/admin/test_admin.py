"""The staff admin: access, the assistant editor's validation and uploads, history actions, API keys."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

import pytest
from django.contrib import admin
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Model
from django.urls import reverse

from assistants_app.admin import model_choices
from assistants_app.models import (
    ApiKey,
    Assistant,
    File,
    Message,
    Run,
    RunStep,
    Thread,
    VectorStore,
    VectorStoreFile,
)
from assistants_app.services.keys import create_key

pytestmark = pytest.mark.django_db

ADD_ASSISTANT = "/admin/assistants_app/assistant/add/"
KEY_RE = re.compile(r"sk-as-[A-Za-z0-9_-]{40}")


@pytest.fixture(autouse=True)
def _fresh_model_list():
    model_choices.clear_cache()
    yield
    model_choices.clear_cache()


def assistant_form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Helper",
        "description": "",
        "model": "gpt-4o-mini",
        "instructions": "Be brief.",
        "temperature": "0.7",
        "top_p": "",
        "response_format_type": "auto",
        "response_format_schema": "",
        "functions": "",
        "backend_base_url": "",
        "backend_api_key_env": "",
        # The function-endpoints inline's management form (no endpoint rows).
        "function_endpoints-TOTAL_FORMS": "0",
        "function_endpoints-INITIAL_FORMS": "0",
        "_save": "Save",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def changelist(model: type[Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.fixture
def history(alice, staff):
    """One of everything the admin shows, as the engine and the API would have written it."""
    assistant = Assistant.objects.create(name="Helper", model="gpt-4o-mini", is_default=True)
    thread = Thread.objects.create(owner=alice, is_chat=True)
    Message.objects.create(
        thread=thread,
        role="user",
        content=[{"type": "text", "text": {"value": "hello there", "annotations": []}}],
    )
    runs = [
        Run.objects.create(
            thread=thread,
            assistant=assistant,
            assistant_ref=assistant.id,
            model="gpt-4o-mini",
            status=Run.Status.COMPLETED,
            usage={"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": total},
        )
        for total in (42, 8)
    ]
    RunStep.objects.create(
        run=runs[0],
        thread_id_ref=thread.id,
        assistant_ref=assistant.id,
        type="tool_calls",
        status="completed",
        step_details={
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Paris"}',
                        "output": '{"temp": 21}',
                    },
                }
            ],
        },
    )
    file = File(owner=staff, filename="notes.txt", purpose="assistants", bytes=5)
    file.data.save("upload", ContentFile(b"hello"), save=True)
    store = VectorStore.objects.create(owner=staff, name="kb")
    VectorStoreFile.objects.create(
        vector_store=store,
        file=file,
        status="failed",
        last_error={"code": "invalid_file", "message": "No text"},
    )
    create_key(alice, name="laptop")
    return {"assistant": assistant, "thread": thread, "runs": runs}


# --- access ----------------------------------------------------------------------------------------
def test_staff_opens_every_changelist_and_changeform(staff_client, history) -> None:
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        response = staff_client.get(changelist(model))
        assert response.status_code == 200, meta.label
        if model_admin.has_add_permission(response.wsgi_request):
            assert (
                staff_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add")).status_code == 200
            )
        obj = model._default_manager.first()
        if obj is not None:
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
            assert staff_client.get(url).status_code == 200, meta.label
    # Token usage per thread (a sum over its runs) and per run; pretty-printed tool calls.
    threads = staff_client.get(changelist(Thread)).content.decode()
    assert ">50<" in threads
    step = staff_client.get(reverse("admin:assistants_app_runstep_change", args=[RunStep.objects.get().pk]))
    assert "&quot;city&quot;: &quot;Paris&quot;" in step.content.decode()
    # A thread's messages, through the link on the thread page.
    messages = staff_client.get(changelist(Message), {"thread__id__exact": history["thread"].id})
    assert "hello there" in messages.content.decode()


def test_history_is_read_only(staff_client, history) -> None:
    run = history["runs"][0]
    page = staff_client.get(reverse("admin:assistants_app_run_change", args=[run.pk])).content.decode()
    assert 'name="_save"' not in page
    assert staff_client.get("/admin/assistants_app/run/add/").status_code == 403
    assert staff_client.post(reverse("admin:assistants_app_run_delete", args=[run.pk])).status_code == 403
    assert (
        staff_client.post(
            reverse("admin:assistants_app_message_change", args=[Message.objects.get().pk]),
            {"role": "assistant"},
        ).status_code
        == 403
    )
    assert Message.objects.get().role == "user"


def test_non_staff_cannot_open_the_admin(client, alice) -> None:
    for login in (False, True):
        if login:
            client.force_login(alice)
        for url in ("/admin/", changelist(Assistant), ADD_ASSISTANT, changelist(ApiKey)):
            response = client.get(url)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    assert client.post(ADD_ASSISTANT, assistant_form()).status_code == 302
    assert not Assistant.objects.exists()


# --- the assistant editor ------------------------------------------------------------------------------
def test_tool_and_schema_errors_are_shown_per_field(staff_client) -> None:
    functions = [
        {"name": "bad name!", "parameters": {"type": "object"}},
        {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "nonsense"}}}},
        {"name": "dup", "parameters": {"type": "object"}},
        {"name": "dup"},
        {"name": "file_search"},
    ]
    response = staff_client.post(
        ADD_ASSISTANT,
        assistant_form(
            functions=json.dumps(functions),
            temperature="2.5",
            response_format_type="json_schema",
            response_format_schema='{"type": 12}',
        ),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    text = " ".join(errors["functions"])
    assert "Function #1 (bad name!): name must be 1-64 characters" in text
    assert "Function #2 (lookup): parameters is not a valid JSON Schema at 'properties/q/type'" in text
    assert "Function #4 (dup): duplicate function name 'dup'" in text
    assert "'file_search' is reserved" in text
    assert "temperature" in errors and "response_format_schema" in errors
    assert "not a valid JSON Schema" in response.content.decode()
    assert not Assistant.objects.exists()

    bad_json = staff_client.post(ADD_ASSISTANT, assistant_form(functions="[{"))
    assert "Not valid JSON" in " ".join(bad_json.context["adminform"].form.errors["functions"])


def test_valid_assistant_saves_and_round_trips(staff_client) -> None:
    weather = {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": False,
    }
    schema = {
        "name": "answer",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        "strict": True,
    }
    response = staff_client.post(
        ADD_ASSISTANT,
        assistant_form(
            functions=json.dumps([{"type": "function", "function": weather}]),
            enable_file_search="on",
            enable_code_interpreter="on",
            top_p="0.9",
            response_format_type="json_schema",
            response_format_schema=json.dumps(schema),
            backend_base_url="http://127.0.0.1:11434/v1",
            backend_api_key_env="OLLAMA_KEY",
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    a = Assistant.objects.get()
    assert a.tools == [
        {"type": "file_search"},
        {"type": "code_interpreter"},
        {"type": "function", "function": weather},
    ]
    assert a.response_format == {"type": "json_schema", "json_schema": schema}
    assert (a.temperature, a.top_p, a.backend_api_key_env) == (0.7, 0.9, "OLLAMA_KEY")
    page = staff_client.get(reverse("admin:assistants_app_assistant_change", args=[a.pk]))
    form = page.context["adminform"].form
    assert json.loads(form.initial["functions"]) == [weather]
    assert form.initial["enable_file_search"] and form.initial["response_format_type"] == "json_schema"


def test_backend_key_must_be_a_variable_name(staff_client) -> None:
    response = staff_client.post(ADD_ASSISTANT, assistant_form(backend_api_key_env="sk-live-123"))
    assert "backend_api_key_env" in response.context["adminform"].form.errors


def test_making_an_assistant_default_undefaults_the_other(staff_client) -> None:
    old = Assistant.objects.create(name="Old", model="m", is_default=True)
    response = staff_client.post(ADD_ASSISTANT, assistant_form(name="New", is_default="on"))
    assert response.status_code == 302
    old.refresh_from_db()
    assert not old.is_default
    assert Assistant.objects.get(is_default=True).name == "New"


def test_model_field_offers_the_backends_models(staff_client, settings, monkeypatch) -> None:
    from assistants_app.backends import client

    settings.MODEL_BACKEND = "openai"
    settings.OPENAI_BASE_URL = "http://models.test/v1"
    settings.ADMIN_LIST_MODELS_TIMEOUT = 0.2

    async def listed(base_url: str, api_key: str, **kw: object) -> list[dict[str, object]]:
        assert base_url == "http://models.test/v1"
        return [{"id": m, "object": "model", "created": 0, "owned_by": "o"} for m in ("qwen2", "llama3")]

    monkeypatch.setattr(client, "fetch_models", listed)
    page = staff_client.get(ADD_ASSISTANT).content.decode()
    assert re.search(r'<select name="model"[^>]*>', page) and '<option value="qwen2">' in page

    async def hangs(base_url: str, api_key: str, **kw: object) -> list[str]:
        import asyncio

        await asyncio.sleep(30)
        return ["never"]

    model_choices.clear_cache()
    monkeypatch.setattr(client, "fetch_models", hangs)
    started = time.monotonic()
    page = staff_client.get(ADD_ASSISTANT).content.decode()
    assert time.monotonic() - started < 3
    assert re.search(r'<input type="text" name="model"', page)


# --- retrieval files --------------------------------------------------------------------------------
def test_inline_upload_attaches_files_to_the_assistants_store(staff_client, staff) -> None:
    texts = {
        "guide.md": b"# Returns\n\nCustomers may return items within thirty days of delivery for a refund.\n",
        "faq.txt": b"Shipping takes three to five business days. Express shipping is available.\n",
    }
    uploads = [SimpleUploadedFile(name, body, content_type="text/plain") for name, body in texts.items()]
    response = staff_client.post(
        ADD_ASSISTANT, assistant_form(enable_file_search="on", retrieval_files=uploads), follow=True
    )
    assert response.status_code == 200
    assistant = Assistant.objects.get()
    [store_id] = assistant.tool_resources["file_search"]["vector_store_ids"]
    store = VectorStore.objects.get(id=store_id)
    assert store.owner == staff
    rows = list(VectorStoreFile.objects.filter(vector_store=store).select_related("file"))
    assert sorted(r.file.filename for r in rows) == sorted(texts)
    for r in rows:
        assert r.status == "in_progress"
        assert (r.file.owner, r.file.purpose, r.file.bytes) == (
            staff,
            "assistants",
            len(texts[r.file.filename]),
        )
        assert r.file.sha256 == hashlib.sha256(texts[r.file.filename]).hexdigest()
        with r.file.data.open("rb") as fh:
            assert fh.read() == texts[r.file.filename]

    # A second upload reuses the same store.
    change_url = reverse("admin:assistants_app_assistant_change", args=[assistant.pk])
    more = SimpleUploadedFile("more.txt", b"Gift cards never expire and can be used online.")
    staff_client.post(change_url, assistant_form(enable_file_search="on", retrieval_files=[more]))
    assistant.refresh_from_db()
    assert assistant.tool_resources["file_search"]["vector_store_ids"] == [store_id]
    assert VectorStoreFile.objects.filter(vector_store=store).count() == 3
    assert "in_progress" in staff_client.get(change_url).content.decode()

    ingest = pytest.importorskip("assistants_app.tools.file_search.ingest")
    for r in VectorStoreFile.objects.filter(vector_store=store):
        assert ingest.ingest_vector_store_file(r.pk) == "completed"
    assert all(r.chunk_count > 0 for r in VectorStoreFile.objects.filter(vector_store=store))
    page = staff_client.get(change_url).content.decode()
    assert "completed" in page and "in_progress" not in page


def test_reindex_action_queues_files_again(staff_client, history) -> None:
    row = VectorStoreFile.objects.get()
    VectorStoreFile.objects.filter(pk=row.pk).update(attempts=3, claimed_by="w1")
    response = staff_client.post(
        changelist(VectorStoreFile), {"action": "reindex_selected", "_selected_action": [row.pk]}
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.status, row.attempts, row.claimed_by, row.last_error) == ("in_progress", 0, "", None)


# --- actions and keys --------------------------------------------------------------------------------
def test_cancel_action_cancels_a_queued_run(staff_client, history, event_log) -> None:
    queued = Run.objects.create(
        thread=history["thread"],
        assistant=history["assistant"],
        assistant_ref=history["assistant"].id,
        model="m",
    )
    done = history["runs"][0]
    response = staff_client.post(
        changelist(Run), {"action": "cancel_selected", "_selected_action": [queued.pk, done.pk]}, follow=True
    )
    assert "Cancelled 1 run(s)." in response.content.decode()
    queued.refresh_from_db()
    done.refresh_from_db()
    assert (queued.status, done.status) == ("cancelled", "completed")


def test_revoke_action_sets_revoked_at(staff_client, alice) -> None:
    key = create_key(alice, name="old").key
    response = staff_client.post(
        changelist(ApiKey), {"action": "revoke_selected", "_selected_action": [key.pk]}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_key_creation_shows_the_key_once_and_stores_a_digest(staff_client, alice) -> None:
    response = staff_client.post(
        "/admin/assistants_app/apikey/add/", {"user": alice.pk, "name": "ci", "_save": "Save"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    [raw] = KEY_RE.findall(response.content.decode())
    key = ApiKey.objects.get()
    assert (key.user, key.name, key.prefix) == (alice, "ci", raw[:12])
    assert key.digest == hashlib.sha256(raw.encode()).hexdigest()
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert not any(raw in str(v) for v in stored.values())
    assert raw not in staff_client.get(changelist(ApiKey)).content.decode()
    assert (
        raw
        not in staff_client.get(reverse("admin:assistants_app_apikey_change", args=[key.pk])).content.decode()
    )
