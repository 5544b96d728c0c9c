"""The code interpreter as a hosted tool, end to end through the engine (sandbox for real)."""

from __future__ import annotations

import json

import pytest

from assistants_app.backends import fake
from assistants_app.models import Assistant, File, Message, RunStep
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread, post_message
from assistants_app.tools.code_interpreter import sandbox
from assistants_app.tools.code_interpreter.tool import parse_code, partial_code
from tests.support.helpers import collect_events, names, text_of, wait_run

_problem = sandbox._probe_namespaces()
needs_sandbox = pytest.mark.skipif(_problem is not None, reason=f"bubblewrap cannot run here: {_problem}")


def test_partial_code_decodes_a_streaming_json_string() -> None:
    args = json.dumps({"code": 'print("a\\tb")\nx = 1'})
    prefixes = [partial_code(args[:i]) for i in range(len(args) + 1)]
    assert prefixes[-1] == 'print("a\\tb")\nx = 1'
    assert all(prefixes[i + 1].startswith(prefixes[i]) for i in range(len(prefixes) - 1))
    assert parse_code("print(1)") == "print(1)"  # raw code instead of JSON


@pytest.fixture
def assistant(alice):
    return Assistant.objects.create(
        owner=alice, model="gpt-4o", instructions="Write and run code.", tools=[{"type": "code_interpreter"}]
    )


@needs_sandbox
def test_reverse_a_string_with_code_streams_tool_deltas(executor, ci_settings, alice, assistant):
    code = 'print("openaichatgpt"[::-1])'
    fake.script(
        fake.tool_turn(("code_interpreter", json.dumps({"code": code}))),
        fake.text_turn("The reversed string is ", "tpgtahcianepo."),
    )
    thread = create_thread(alice)
    post_message(thread, role="user", content='Reverse the string "openaichatgpt".')
    run = start_run(thread, assistant)
    events = collect_events(run.id, timeout=90)
    assert names(events)[-1] == "thread.run.completed", events[-1].data
    deltas = [
        e.data["delta"]["step_details"]["tool_calls"][0] for e in events if e.event == "thread.run.step.delta"
    ]
    assert all(d["type"] == "code_interpreter" for d in deltas)
    streamed_input = "".join(d["code_interpreter"].get("input") or "" for d in deltas)
    assert streamed_input == code
    outputs = [o for d in deltas for o in d["code_interpreter"].get("outputs") or []]
    assert outputs and outputs[0]["type"] == "logs" and "tpgtahcianepo" in outputs[0]["logs"]
    assert text_of(events) == "The reversed string is tpgtahcianepo."
    step = RunStep.objects.get(run_id=run.id, type="tool_calls")
    call = step.step_details["tool_calls"][0]
    assert call["code_interpreter"]["input"] == code
    assert "tpgtahcianepo" in call["code_interpreter"]["outputs"][0]["logs"]
    tool_msg = fake.requests()[1].messages[-1]
    assert tool_msg["role"] == "tool" and "tpgtahcianepo" in tool_msg["content"]


@needs_sandbox
def test_generated_png_becomes_an_image_file_of_the_answer(executor, ci_settings, alice, assistant):
    code = (
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [1, 4, 9])\nplt.savefig('/mnt/data/plot.png')\n"
        "open('/mnt/data/data.csv', 'w').write('x,y\\n1,1\\n')\nprint('saved')"
    )
    fake.script(
        fake.tool_turn(("code_interpreter", json.dumps({"code": code}))),
        fake.text_turn("Here is the plot and [the data](sandbox:/mnt/data/data.csv)."),
    )
    thread = create_thread(alice)
    post_message(thread, role="user", content="Plot y = x^2")
    run = start_run(thread, assistant)
    run = wait_run(run.id, timeout=120)
    assert run.status == "completed", run.last_error
    msg = Message.objects.get(run=run)
    image = next(p for p in msg.content if p["type"] == "image_file")
    png = File.objects.get(id=image["image_file"]["file_id"])
    assert png.owner == alice and png.filename == "plot.png"
    assert png.data.open("rb").read(8) == b"\x89PNG\r\n\x1a\n"
    annotation = msg.content[0]["text"]["annotations"][0]
    assert annotation["type"] == "file_path" and annotation["text"] == "sandbox:/mnt/data/data.csv"
    text = msg.content[0]["text"]["value"]
    assert text[annotation["start_index"] : annotation["end_index"]] == "sandbox:/mnt/data/data.csv"
    assert File.objects.get(id=annotation["file_path"]["file_id"]).data.open("rb").read() == b"x,y\n1,1\n"


@needs_sandbox
def test_exceptions_come_back_to_the_model(executor, ci_settings, alice, assistant):
    fake.script(fake.tool_turn(("code_interpreter", json.dumps({"code": "1/0"}))), fake.text_turn("Oops."))
    thread = create_thread(alice)
    post_message(thread, role="user", content="divide")
    run = wait_run(start_run(thread, assistant).id, timeout=90)
    assert run.status == "completed"
    assert "ZeroDivisionError" in fake.requests()[1].messages[-1]["content"]
