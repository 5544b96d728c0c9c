"""Seed 001's two console chat clients, unchanged but for base_url/api_key, against the real server.

The clients are the seed's code (its indentation, lost in the seed text, restored); `input()` reads
from a list and stdout is captured, so the assertions are on what a user would see.
"""

from __future__ import annotations

import builtins
from typing import Any, override

import openai
import pytest
from openai import AssistantEventHandler, OpenAI

from tests.fakes.upstream import text
from tests.support.live_server import LiveServer

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def feed_input(monkeypatch: pytest.MonkeyPatch, lines: list[str]) -> None:
    answers = iter(lines)

    def fake_input(prompt: str = "") -> str:
        print(prompt, end="")
        line = next(answers)
        print(line)
        return line

    monkeypatch.setattr(builtins, "input", fake_input)


def polling_chat(base_url: str, api_key: str) -> None:
    """Seed 001, example 1 (create_and_poll)."""
    # Connect to OpenAI API
    client = OpenAI(
        api_key=api_key,
        base_url=base_url,
    )
    # Create an Assistant
    my_assistant = client.beta.assistants.create(
        instructions="You are a helpful assistant.",
        name="AI Assistant",
        model="gpt-4o",  # Specify the model
    )
    assistant_id = my_assistant.id  # Store Assistant ID
    thread = client.beta.threads.create()  # Create a new Thread
    thread_id = thread.id  # Store the Thread ID

    def send_message(user_message: str) -> None:
        """Send a message to the Assistant and receive a full response"""
        if not user_message.strip():
            print("⚠️ Message cannot be empty!")
            return
        # Add the user's Message to the thread
        client.beta.threads.messages.create(thread_id=thread_id, role="user", content=user_message)
        # Start a new Run and wait for completion
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread_id, assistant_id=assistant_id, instructions="Keep responses concise and clear."
        )
        # Check if the Run was successful
        if run.status == "completed":
            # Retrieve messages from the thread
            messages = client.beta.threads.messages.list(thread_id=thread_id)
            # Find the last Assistant Message
            for message in reversed(messages.data):
                if message.role == "assistant":
                    print()  # Add an empty line for spacing
                    print(f"Assistant > {message.content[0].text.value}")  # type: ignore[union-attr]
                    return
        print("⚠️ Error: Failed to get a response from the Assistant.")

    # Main chat loop
    print("🤖 AI Assistant is ready! Type 'exit' to quit.")
    while True:
        user_input = input("\nYou > ")
        if user_input.lower() in ["exit", "quit"]:
            print("👋 Chat session ended. See you next time!")
            break
        send_message(user_input)


def streaming_chat(base_url: str, api_key: str) -> None:
    """Seed 001, example 2 (runs.stream with an AssistantEventHandler)."""
    client = OpenAI(
        api_key=api_key,
        base_url=base_url,
    )
    my_assistant = client.beta.assistants.create(
        instructions="You are a helpful assistant.",
        name="AI Assistant",
        model="gpt-4o",  # Specify the model
    )
    assistant_id = my_assistant.id  # Store assistant ID
    thread = client.beta.threads.create()  # Create a new thread
    thread_id = thread.id  # Store the thread ID

    # Event handler for streaming responses
    class EventHandler(AssistantEventHandler):
        @override
        def on_text_created(self, text: Any) -> None:
            print("\nAssistant >", end=" ", flush=True)

        @override
        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            print(delta.value, end="", flush=True)

        def on_tool_call_created(self, tool_call: Any) -> None:
            print(f"\nAssistant > {tool_call.type}\n", flush=True)

        def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
            if delta.type == "code_interpreter":
                if delta.code_interpreter.input:
                    print(delta.code_interpreter.input, end="", flush=True)
                if delta.code_interpreter.outputs:
                    print("\n\noutput >", flush=True)
                    for output in delta.code_interpreter.outputs:
                        if output.type == "logs":
                            print(f"\n{output.logs}", flush=True)

    def send_message(user_message: str) -> None:
        """Send a message to the Assistant and display the response"""
        if not user_message.strip():
            print("⚠️ Message cannot be empty!")
            return
        # Add the user's Message to the Thread
        client.beta.threads.messages.create(thread_id=thread_id, role="user", content=user_message)
        # Start processing the Message with streaming output
        with client.beta.threads.runs.stream(
            thread_id=thread_id,
            assistant_id=assistant_id,
            instructions="Keep responses concise and clear.",
            event_handler=EventHandler(),
        ) as stream:
            stream.until_done()

    # Main chat loop
    print("🤖 AI Assistant is ready! Type 'exit' to quit.")
    while True:
        user_input = input("\nYou > ")
        if user_input.lower() in ["exit", "quit"]:
            print("👋 Chat session ended. See you next time!")
            break
        send_message(user_input)


def test_polling_console_chat(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    live.upstream.script(
        text("Corn flakes are ", "crunchy, quick and fortified."),
        text("Absolutely, ", "a good day for Python!"),
    )
    feed_input(
        monkeypatch, ["Hi! Please write 3 good things about corn flakes for me", "", "And Python?", "exit"]
    )
    polling_chat(live.base_url, live.keys["alice"])
    out = capsys.readouterr().out
    assert "🤖 AI Assistant is ready!" in out
    assert "Assistant > Corn flakes are crunchy, quick and fortified." in out
    assert "⚠️ Message cannot be empty!" in out
    # The seed reads messages.list() (newest first) in reverse, so it prints the thread's *first*
    # assistant reply on every turn; OpenAI's API did the same. The second run must still complete.
    assert out.count("Assistant > Corn flakes are crunchy, quick and fortified.") == 2
    assert "⚠️ Error" not in out
    assert out.rstrip().endswith("👋 Chat session ended. See you next time!")
    # The run's instructions override reached the model; both turns' history did too.
    second = live.upstream.requests[-1]["messages"]
    assert second[0] == {"role": "system", "content": "Keep responses concise and clear."}
    assert [m["content"] for m in second[1:]] == [
        "Hi! Please write 3 good things about corn flakes for me",
        "Corn flakes are crunchy, quick and fortified.",
        "And Python?",
    ]


def test_streaming_console_chat(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    live.upstream.script(text("Hi! ", "Corn ", "flakes ", "rock."), text("Goodbye!"))
    feed_input(monkeypatch, ["Hi! Please write 3 good things about corn flakes for me", "Bye!", "exit"])
    streaming_chat(live.base_url, live.keys["alice"])
    out = capsys.readouterr().out
    assert "\nAssistant > Hi! Corn flakes rock.\n" in out
    assert "\nAssistant > Goodbye!\n" in out
    assert out.rstrip().endswith("👋 Chat session ended. See you next time!")


def test_streaming_chat_prints_tool_calls(live: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    """The seed's on_tool_call_created fires for function calls streamed through run step deltas."""
    from tests.fakes.upstream import tool_calls

    client = live.client()
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    asst = client.beta.assistants.create(model="gpt-4o", tools=tools)  # type: ignore[arg-type]
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "look it up"}])
    live.upstream.script(tool_calls(("lookup", '{"q": "x"}')))
    created: list[str] = []
    deltas: list[str] = []

    class Handler(AssistantEventHandler):
        def on_tool_call_created(self, tool_call: Any) -> None:
            created.append(tool_call.type)

        def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
            deltas.append(delta.function.arguments or "")

    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=asst.id, event_handler=Handler()
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert created == ["function"]
    assert "".join(deltas) == '{"q": "x"}'
    assert run.status == "requires_action"
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)


def test_sdk_version_is_pinned() -> None:
    assert openai.__version__.startswith("3.51.")


def test_streaming_chat_prints_code_interpreter(
    live: LiveServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed's code-interpreter branch: the code streams as input deltas, then "output >" and the logs."""
    from tests.fakes.upstream import tool_calls

    client = live.client()
    asst = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "6 times 7?"}])
    live.upstream.script(tool_calls(("code_interpreter", '{"code": "print(6 * 7)"}')), text("It is 42."))

    class EventHandler(AssistantEventHandler):  # the seed's handler, as in streaming_chat()
        @override
        def on_text_created(self, text: Any) -> None:
            print("\nAssistant >", end=" ", flush=True)

        @override
        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            print(delta.value, end="", flush=True)

        def on_tool_call_created(self, tool_call: Any) -> None:
            print(f"\nAssistant > {tool_call.type}\n", flush=True)

        def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
            if delta.type == "code_interpreter":
                if delta.code_interpreter.input:
                    print(delta.code_interpreter.input, end="", flush=True)
                if delta.code_interpreter.outputs:
                    print("\n\noutput >", flush=True)
                    for output in delta.code_interpreter.outputs:
                        if output.type == "logs":
                            print(f"\n{output.logs}", flush=True)

    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=asst.id, event_handler=EventHandler()
    ) as stream:
        stream.until_done()
    out = capsys.readouterr().out
    assert "\nAssistant > code_interpreter\n" in out
    assert "print(6 * 7)" in out
    assert "\n\noutput >\n" in out
    # 42 when the sandbox (bubblewrap + its venv) is installed, otherwise the tool says it is unavailable.
    assert "\n42" in out or "not available" in out, out
    assert out.rstrip().endswith("Assistant > It is 42.")
