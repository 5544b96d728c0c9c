// API parity through the official Node SDK: a stream the client aborts mid-answer, the model list,
// sampling parameters in effect. The model replies are scripted by the pytest side
// (tests/api/test_parity_node.py) before each scenario starts.
import { toFile } from 'openai';
import { client, expectError, main, messageText } from './common.mjs';

const c = client();
const TERMINAL = ['completed', 'failed', 'cancelled', 'expired', 'incomplete'];

async function waitTerminal(threadId, runId) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const run = await c.beta.threads.runs.retrieve(runId, { thread_id: threadId });
    if (TERMINAL.includes(run.status) || Date.now() > deadline) return run;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Resolves with the next line on stdin. */
function nextLine() {
  return new Promise((resolve) => {
    let buffered = '';
    const onData = (chunk) => {
      buffered += chunk;
      if (buffered.includes('\n')) {
        process.stdin.off('data', onData);
        process.stdin.pause();
        resolve(buffered.split('\n')[0]);
      }
    };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', onData);
  });
}

const scenarios = {
  async stream_aborted() {
    const assistant = await c.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await c.beta.threads.create({ messages: [{ role: 'user', content: 'count' }] });
    const stream = c.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
    let runId = null;
    const seen = [];
    for await (const event of stream) {
      seen.push(event.event);
      if (event.event === 'thread.run.created') runId = event.data.id;
      if (event.event === 'thread.message.delta') {
        stream.abort(); // closes the connection
        break;
      }
    }
    const statusAfterAbort = (await c.beta.threads.runs.retrieve(runId, { thread_id: thread.id })).status;
    // The pytest side holds the rest of the answer until it reads this line, then says "go".
    process.stdout.write('aborted\n');
    await nextLine();
    const run = await waitTerminal(thread.id, runId);
    const messages = (await c.beta.threads.messages.list(thread.id, { run_id: runId })).data;
    return {
      seen,
      aborted: stream.aborted,
      status_after_abort: statusAfterAbort,
      status: run.status,
      text: messageText(messages),
      message_statuses: messages.map((m) => m.status),
    };
  },

  async models() {
    const listed = [];
    for await (const model of c.models.list()) listed.push(model);
    const first = await c.models.retrieve(listed[0].id);
    const missing = await expectError(c.models.retrieve('no-such-model'));
    return { listed, first, missing };
  },

  async model_with_slash() {
    // The SDK percent-encodes the id into one path segment.
    return await c.models.retrieve(process.env.MODEL_ID);
  },

  async vision() {
    const image = Buffer.from(process.env.IMAGE_B64, 'base64');
    const file = await c.files.create({ file: await toFile(image, 'red.png'), purpose: 'vision' });
    const assistant = await c.beta.assistants.create({ model: 'gpt-4o' });
    const thread = await c.beta.threads.create({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image_file', image_file: { file_id: file.id, detail: 'low' } },
          ],
        },
      ],
    });
    const run = await c.beta.threads.runs.createAndPoll(thread.id, { assistant_id: assistant.id });
    const messages = (await c.beta.threads.messages.list(thread.id, { run_id: run.id })).data;
    return { status: run.status, text: messageText(messages) };
  },

  async sampling() {
    const assistant = await c.beta.assistants.create({ model: 'gpt-4o' });
    const run = await c.beta.threads.createAndRunPoll({
      assistant_id: assistant.id,
      thread: { messages: [{ role: 'user', content: 'hi' }] },
    });
    return { temperature: run.temperature, top_p: run.top_p, status: run.status };
  },
};

await main(scenarios);
