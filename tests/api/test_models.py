"""/v1/models through the official SDKs against the real server: the models of the default backend
and of the caller's assistants' own endpoints, cached briefly, a failing endpoint skipped, unknown ids
a 404 like OpenAI's; and the service's deadline on an endpoint that never answers."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from assistants_app.services import models
from tests.api.test_node_sdk import node, run_node  # noqa: F401  (the `node` fixture)
from tests.fakes.upstream import FakeUpstream
from tests.support.live_server import LiveServer, free_port

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]

SLASHED = "Qwen/Qwen2.5-7B-Instruct"


@pytest.fixture
def second() -> Iterator[FakeUpstream]:
    """Another OpenAI-compatible server, to be an assistant's own endpoint."""
    with FakeUpstream(model_ids=(SLASHED, "llava:13b", "fake-model")) as upstream:
        yield upstream


@pytest.fixture
def own_endpoint(live: LiveServer) -> Iterator[Any]:
    """Give one of alice's assistants its own endpoint; the assistant goes at the end of the test
    (with it, that endpoint from alice's list)."""
    made: list[str] = []

    def give(base_url: str, model: str = "m") -> str:
        client = live.client()
        assistant = client.beta.assistants.create(model=model)
        made.append(assistant.id)
        # Only staff set an assistant's endpoint (in the admin); the API has no field for it.
        live.sql(
            "UPDATE assistants_app_assistant SET backend_base_url = ? WHERE id = ?", base_url, assistant.id
        )
        return assistant.id

    yield give
    for assistant_id in made:
        live.client().beta.assistants.delete(assistant_id)


def ids(client: openai.OpenAI) -> list[str]:
    return [m.id for m in client.models.list()]


def test_list_and_retrieve_the_default_backends_models(live: LiveServer) -> None:
    client = live.client()
    listed = list(client.models.list())
    assert [m.to_dict() for m in listed] == [
        {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake-upstream"}
    ]
    assert client.models.retrieve("fake-model").owned_by == "fake-upstream"
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("gpt-nope")
    assert err.value.code == "model_not_found" and err.value.param == "model"
    assert "gpt-nope" in err.value.message


def test_an_assistants_own_endpoint_adds_its_models_for_its_owner_only(
    live: LiveServer, second: FakeUpstream, own_endpoint: Any
) -> None:
    alice, bob = live.client(), live.client("bob")
    own_endpoint(second.base_url, model="llava:13b")
    # The default endpoint first; an id both offer is listed once.
    assert ids(alice) == ["fake-model", SLASHED, "llava:13b"]
    # The SDK percent-encodes the "/" into one path segment; the route takes it whole.
    assert alice.models.retrieve(SLASHED).to_dict() == {
        "id": SLASHED,
        "object": "model",
        "created": 0,
        "owned_by": "fake-upstream",
    }
    # Bob's runs cannot reach alice's assistant's endpoint: not his models.
    assert ids(bob) == ["fake-model"]
    with pytest.raises(openai.NotFoundError):
        bob.models.retrieve(SLASHED)


def test_model_lists_are_cached_briefly(live: LiveServer, second: FakeUpstream, own_endpoint: Any) -> None:
    client = live.client()
    own_endpoint(second.base_url)
    assert "llava:13b" in ids(client)
    asked = second.models_requests
    second.model_ids.append("added-later")
    assert "added-later" not in ids(client)  # remembered (MODELS_CACHE_SECONDS, 60 s)
    client.models.retrieve("llava:13b")
    assert second.models_requests == asked == 1


def test_a_failing_endpoint_is_skipped_not_fatal(live: LiveServer, own_endpoint: Any) -> None:
    client = live.client()
    own_endpoint(f"http://127.0.0.1:{free_port()}/v1")  # nothing listens
    assert ids(client) == ["fake-model"]
    assert "could not list the models of http://127.0.0.1" in live.log_tail(200)


def test_node_sdk_models(live: LiveServer, node: str) -> None:  # noqa: F811
    out = run_node(node, live, "parity.mjs", "models")
    assert out["listed"] == [
        {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake-upstream"}
    ]
    assert out["first"]["id"] == "fake-model"
    assert out["missing"]["class"] == "NotFoundError" and out["missing"]["code"] == "model_not_found"


def test_node_sdk_model_id_with_a_slash(
    live: LiveServer,
    node: str,  # noqa: F811
    second: FakeUpstream,
    own_endpoint: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own_endpoint(second.base_url)
    monkeypatch.setenv("MODEL_ID", SLASHED)
    assert run_node(node, live, "parity.mjs", "model_with_slash")["id"] == SLASHED


def test_openapi_documents_the_operations(live: LiveServer) -> None:
    import httpx2

    doc = httpx2.get(f"{live.base_url}/openapi.json").json()
    assert doc["paths"]["/models"]["get"]["operationId"] == "listModels"
    retrieve = doc["paths"]["/models/{model}"]["get"]
    assert retrieve["parameters"][0]["schema"]["maxLength"] == 256
    assert json.dumps(doc["components"]["schemas"]["Model"]).count("owned_by") == 2


# --- the service, in-process --------------------------------------------------------------------------
@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"


def test_service_bounds_a_silent_endpoint_by_its_deadline(
    settings: Any, silent_endpoint: str, db: Any, alice: Any
) -> None:
    from assistants_app.models import Assistant

    models.clear_cache()
    with FakeUpstream(model_ids=("local-model",)) as default:
        settings.MODEL_BACKEND = "openai"
        settings.OPENAI_BASE_URL = default.base_url
        settings.MODELS_LIST_TIMEOUT = 1.5
        Assistant.objects.create(owner=alice, model="m", backend_base_url=silent_endpoint)
        try:
            assert [m["id"] for m in models.available_models(alice)] == ["local-model"]
        finally:
            models.clear_cache()


def test_service_lists_nothing_without_a_real_backend(settings: Any, db: Any, alice: Any) -> None:
    settings.MODEL_BACKEND = "fake"
    assert models.available_models(alice) == []
    with pytest.raises(models.ModelNotFound):
        models.get_model(alice, "fake-model")
