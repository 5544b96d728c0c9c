// Runs through the official Node SDK: createAndPoll, function calling, runs.stream and its event
// handlers, raw streams, submitToolOutputsStream, createAndRun helpers, failures and cancellation.
// The model replies are scripted by the pytest side before each scenario starts.
import { client, Counter, expectError, main, messageText, WEATHER } from './common.mjs';

const c = client();

async function setUp(content = "What's the weather?") {
  const assistant = await c.beta.assistants.create({ model: 'gpt-4o', instructions: 'Be brief.', tools: [WEATHER] });
  const thread = await c.beta.threads.create({ messages: [{ role: 'user', content }] });
  return { assistant, thread };
}

async function runText(threadId, runId) {
  return messageText((await c.beta.threads.messages.list(threadId, { run_id: runId })).data);
}

/** Consume an AssistantStream both ways the SDK offers: `for await` events, and handler callbacks. */
async function drain(stream) {
  const events = [];
  const deltas = [];
  const toolArgs = {};
  const done = [];
  stream.on('textDelta', (delta) => deltas.push(delta.value));
  // The message as the server sent it in thread.message.completed (finalMessages() keeps the SDK's
  // accumulated snapshot, whose status stays the one of thread.message.created).
  stream.on('messageDone', (message) => done.push([message.role, message.status, messageText([message])]));
  stream.on('toolCallDelta', (delta, snapshot) => {
    if (snapshot.type === 'function') toolArgs[snapshot.id] = snapshot.function.arguments;
  });
  for await (const event of stream) events.push(event.event);
  const run = await stream.finalRun();
  return { events, deltas, toolArgs, done, run, messages: await stream.finalMessages() };
}

const scenarios = {
  async create_and_poll() {
    const { assistant, thread } = await setUp();
    const counter = new Counter();
    // No pollIntervalMs: the SDK must follow the server's openai-poll-after-ms header.
    const run = await client({ counter }).beta.threads.runs.createAndPoll(thread.id, {
      assistant_id: assistant.id,
      metadata: { via: 'poll' },
      temperature: 0.2,
    });
    const steps = await c.beta.threads.runs.steps.list(run.id, { thread_id: thread.id });
    return {
      status: run.status,
      metadata: run.metadata,
      temperature: run.temperature,
      total_tokens: run.usage?.total_tokens ?? null,
      text: await runText(thread.id, run.id),
      steps: steps.data.map((s) => [s.type, s.status]),
      posts: counter.count('POST', '/runs'),
      polls: counter.count('GET', `/runs/${run.id}`),
    };
  },

  async function_calling_poll() {
    const { assistant, thread } = await setUp();
    const run = await c.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id });
    const calls = run.required_action?.submit_tool_outputs.tool_calls ?? [];
    // Answering only one of two calls is refused by name, and the run keeps waiting.
    const partial = await expectError(
      c.beta.threads.runs.submitToolOutputs(run.id, {
        thread_id: thread.id,
        tool_outputs: [{ tool_call_id: calls[0].id, output: 'sunny' }],
      }),
    );
    const done = await c.beta.threads.runs.submitToolOutputsAndPoll(run.id, {
      thread_id: thread.id,
      tool_outputs: calls.map((call, i) => ({ tool_call_id: call.id, output: ['sunny', 'rainy'][i] })),
    });
    const steps = await c.beta.threads.runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' });
    return {
      first_status: run.status,
      action: run.required_action?.type ?? null,
      calls: calls.map((call) => [call.type, call.function.name, JSON.parse(call.function.arguments)]),
      partial: { ...partial, names_missing: partial.message.includes(calls[1].id) },
      status: done.status,
      text: await runText(thread.id, run.id),
      steps: steps.data.map((s) => s.type),
      outputs: steps.data[0].step_details.tool_calls.map((call) => call.function.output),
    };
  },

  async runs_stream() {
    const { assistant, thread } = await setUp();
    const got = await drain(c.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id }));
    return {
      events: got.events,
      text: got.deltas.join(''),
      status: got.run.status,
      final_messages: got.messages.map((m) => [m.role, messageText([m])]),
      messages_done: got.done,
      stored_text: await runText(thread.id, got.run.id),
    };
  },

  async raw_stream() {
    const { assistant, thread } = await setUp();
    const stream = await c.beta.threads.runs.create(thread.id, { assistant_id: assistant.id, stream: true });
    const events = [];
    let text = '';
    for await (const event of stream) {
      events.push(event.event);
      if (event.event === 'thread.message.delta') text += event.data.delta.content[0].text.value;
    }
    return { events, text };
  },

  async submit_tool_outputs_stream() {
    const { assistant, thread } = await setUp();
    const first = await drain(c.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id }));
    const call = first.run.required_action.submit_tool_outputs.tool_calls[0];
    const second = await drain(
      c.beta.threads.runs.submitToolOutputsStream(first.run.id, {
        thread_id: thread.id,
        tool_outputs: [{ tool_call_id: call.id, output: '-5C' }],
      }),
    );
    return {
      first_events: first.events,
      first_status: first.run.status,
      call: [call.function.name, JSON.parse(call.function.arguments)],
      streamed_arguments: first.toolArgs[call.id] ?? null,
      events: second.events,
      text: second.deltas.join(''),
      same_run: second.run.id === first.run.id,
      status: second.run.status,
      stored_text: await runText(thread.id, first.run.id),
    };
  },

  async create_and_run_helpers() {
    const { assistant } = await setUp();
    const thread = { messages: [{ role: 'user', content: 'hi' }], metadata: { src: 'node' } };
    const polled = await c.beta.threads.createAndRunPoll({ assistant_id: assistant.id, thread });
    const streamed = await drain(c.beta.threads.createAndRunStream({ assistant_id: assistant.id, thread }));
    const created = await c.beta.threads.retrieve(streamed.run.thread_id);
    return {
      polled: [polled.status, await runText(polled.thread_id, polled.id)],
      events: streamed.events,
      streamed: [streamed.run.status, streamed.deltas.join('')],
      thread_metadata: created.metadata,
      distinct_threads: polled.thread_id !== streamed.run.thread_id,
    };
  },

  async upstream_failure() {
    const { assistant, thread } = await setUp();
    const got = await drain(c.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id }));
    return { events: got.events, status: got.run.status, last_error: got.run.last_error };
  },

  async cancel_mid_stream() {
    const { assistant, thread } = await setUp();
    const stream = await c.beta.threads.runs.create(thread.id, { assistant_id: assistant.id, stream: true });
    const events = [];
    let runId = null;
    let text = '';
    let cancelled = null;
    for await (const event of stream) {
      events.push(event.event);
      if (event.event === 'thread.run.created') runId = event.data.id;
      if (event.event !== 'thread.message.delta') continue;
      text += event.data.delta.content[0].text.value;
      // Everything the upstream will send has arrived; it now hangs until the run is cancelled.
      if (text === 'partial answer') cancelled = (await c.beta.threads.runs.cancel(runId, { thread_id: thread.id })).status;
    }
    const run = await c.beta.threads.runs.retrieve(runId, { thread_id: thread.id });
    const [message] = (await c.beta.threads.messages.list(thread.id, { run_id: runId })).data;
    const again = await expectError(c.beta.threads.runs.cancel(runId, { thread_id: thread.id }));
    return {
      events,
      cancel_answer: cancelled,
      status: run.status,
      cancelled_at: run.cancelled_at,
      message: [message.status, message.incomplete_details?.reason ?? null, messageText([message])],
      cancel_again: again,
    };
  },
};

await main(scenarios);
