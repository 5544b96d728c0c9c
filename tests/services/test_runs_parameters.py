"""One list of run parameters (services.runs.RUN_PARAMETERS), for the API and every other caller.

Before it, services.RUN_OVERRIDES and services_api._RUN_PASSTHROUGH each listed them (the second
without tools and response_format, which had their own code path).
"""

from __future__ import annotations

import pytest
from django.test import Client

from assistants_app.api import request_specs
from assistants_app.errors import InvalidRequest
from assistants_app.models import Assistant, Run
from assistants_app.services import keys
from assistants_app.services.runs import RUN_PARAMETERS, UNSUPPORTED_RUN_PARAMETERS, start_run
from assistants_app.services.threads import create_thread

pytestmark = pytest.mark.django_db

EVERY_PARAMETER = {
    "model": "other-model",
    "instructions": "Be brief.",
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "metadata": {"k": "v"},
    "temperature": 0.3,
    "top_p": 0.9,
    "max_prompt_tokens": 1000,
    "max_completion_tokens": 200,
    "truncation_strategy": {"type": "last_messages", "last_messages": 5},
    "response_format": {"type": "json_object"},
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "parallel_tool_calls": False,
}


def test_the_list_is_the_api_s_run_options() -> None:
    wire = set(request_specs.run_option_fields()) - {"assistant_id", "stream"}
    assert set(RUN_PARAMETERS) == wire
    assert set(EVERY_PARAMETER) == set(RUN_PARAMETERS)
    assert set(UNSUPPORTED_RUN_PARAMETERS) <= set(request_specs.RUN_CREATE.fields)


@pytest.mark.parametrize("path", ["runs", "create_and_run"])
def test_every_parameter_reaches_the_run_row(alice, path) -> None:
    api = Client(HTTP_AUTHORIZATION=f"Bearer {keys.create_key(alice).raw}")
    assistant = Assistant.objects.create(owner=alice, model="m", instructions="Assistant's.")
    body = {"assistant_id": assistant.id, **EVERY_PARAMETER}
    if path == "runs":
        thread = api.post("/v1/threads", {}, content_type="application/json").json()
        response = api.post(f"/v1/threads/{thread['id']}/runs", body, content_type="application/json")
    else:
        response = api.post("/v1/threads/runs", {**body, "thread": {}}, content_type="application/json")
    assert response.status_code == 200, response.content
    run = Run.objects.get(id=response.json()["id"])
    assert {name: getattr(run, name) for name in RUN_PARAMETERS} == EVERY_PARAMETER


def test_unknown_and_unsupported_parameters_are_refused(alice) -> None:
    thread = create_thread(alice)
    assistant = Assistant.objects.create(owner=alice, model="m")
    with pytest.raises(InvalidRequest, match="Unsupported run parameter") as unknown:
        start_run(thread, assistant, top_k=3)
    assert unknown.value.param == "top_k"
    with pytest.raises(InvalidRequest) as unsupported:
        start_run(thread, assistant, reasoning_effort="low")
    assert unsupported.value.code == "unsupported_parameter"
    # Positive control: the assistant's values fill in what is not given.
    run = start_run(thread, assistant, temperature=0.5)
    assert (run.model, run.temperature, run.tool_choice) == ("m", 0.5, "auto")
