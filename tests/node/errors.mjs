// The official Node SDK's error classes against the server's error responses: NotFoundError for
// missing and other owners' objects, BadRequestError for bad parameters (naming them),
// AuthenticationError for bad keys; and how many requests each took (the SDK must not retry them).
import { toFile } from 'openai';
import { client, Counter, expectError, main, otherKey } from './common.mjs';

const c = client();

/** Each call's error plus the number of HTTP requests the SDK sent for it. */
async function failures(calls, key) {
  const out = {};
  for (const [name, call] of Object.entries(calls)) {
    const counter = new Counter();
    out[name] = { ...(await expectError(call(client({ key, counter })))), requests: counter.calls.length };
  }
  return out;
}

async function waitStatus(threadId, runId, statuses) {
  for (let i = 0; i < 400; i++) {
    const run = await c.beta.threads.runs.retrieve(runId, { thread_id: threadId });
    if (statuses.includes(run.status)) return run;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`run ${runId} never reached ${statuses}`);
}

const scenarios = {
  async not_found() {
    const assistant = await c.beta.assistants.create({ model: 'gpt-4o', name: 'original' });
    const thread = await c.beta.threads.create({ messages: [{ role: 'user', content: 'private' }] });
    const [message] = (await c.beta.threads.messages.list(thread.id)).data;
    const file = await c.files.create({ file: await toFile(Buffer.from('top secret'), 's.txt'), purpose: 'assistants' });
    const store = await c.vectorStores.create({ name: 'private' });
    const others = await failures(
      {
        assistant: (o) => o.beta.assistants.retrieve(assistant.id),
        assistant_update: (o) => o.beta.assistants.update(assistant.id, { name: 'mine now' }),
        thread: (o) => o.beta.threads.retrieve(thread.id),
        thread_delete: (o) => o.beta.threads.delete(thread.id),
        message: (o) => o.beta.threads.messages.retrieve(message.id, { thread_id: thread.id }),
        messages_list: (o) => o.beta.threads.messages.list(thread.id),
        run_create: (o) => o.beta.threads.runs.create(thread.id, { assistant_id: assistant.id }),
        file: (o) => o.files.retrieve(file.id),
        file_content: (o) => o.files.content(file.id),
        vector_store: (o) => o.vectorStores.retrieve(store.id),
      },
      otherKey(),
    );
    const missing = await failures({
      assistant: (o) => o.beta.assistants.retrieve('asst_doesnotexist'),
      thread: (o) => o.beta.threads.retrieve('thread_doesnotexist'),
      run: (o) => o.beta.threads.runs.retrieve('run_doesnotexist', { thread_id: thread.id }),
      file: (o) => o.files.retrieve('file-doesnotexist'),
    });
    // The other user's attempts changed nothing.
    const intact = {
      assistant_name: (await c.beta.assistants.retrieve(assistant.id)).name,
      thread: (await c.beta.threads.retrieve(thread.id)).id === thread.id,
      runs: (await c.beta.threads.runs.list(thread.id)).data.length,
    };
    return { others, missing, intact };
  },

  async bad_request() {
    const thread = await c.beta.threads.create();
    return failures({
      temperature: (o) => o.beta.assistants.create({ model: 'gpt-4o', temperature: 5 }),
      unknown_parameter: (o) => o.beta.assistants.create({ model: 'gpt-4o', bogus: 1 }),
      metadata: (o) => o.beta.threads.create({ metadata: { k: 1 } }),
      limit: (o) => o.beta.threads.messages.list(thread.id, { limit: 0 }),
      order: (o) => o.beta.threads.messages.list(thread.id, { order: 'sideways' }),
      purpose: async (o) => o.files.create({ file: await toFile(Buffer.from('x'), 'a.txt'), purpose: 'nonsense' }),
      content_type: (o) =>
        o.beta.threads.messages.create(thread.id, { role: 'user', content: [{ type: 'video', video: {} }] }),
    });
  },

  async authentication() {
    const bad = await failures(
      { list: (o) => o.beta.assistants.list(), create: (o) => o.beta.threads.create() },
      `sk-as-${'A1b2C3d4'.repeat(5)}`,
    );
    const short = await failures({ list: (o) => o.beta.assistants.list() }, 'sk-xxx');
    return { bad, short };
  },

  async busy_thread() {
    const assistant = await c.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await c.beta.threads.create({ messages: [{ role: 'user', content: 'hi' }] });
    const run = await c.beta.threads.runs.create(thread.id, { assistant_id: assistant.id });
    await waitStatus(thread.id, run.id, ['in_progress']);
    // Default maxRetries: only the server's x-should-retry: false may keep the SDK from retrying.
    const busy = await failures({
      message: (o) => o.beta.threads.messages.create(thread.id, { role: 'user', content: 'another' }),
      run: (o) => o.beta.threads.runs.create(thread.id, { assistant_id: assistant.id }),
    });
    await c.beta.threads.runs.cancel(run.id, { thread_id: thread.id });
    const ended = await waitStatus(thread.id, run.id, ['cancelled', 'failed', 'completed', 'expired']);
    return { busy, ended: ended.status };
  },
};

await main(scenarios);
