// Shared by the Node SDK scenarios (tests/test_api_node_sdk.py runs them):
//   node <script>.mjs <scenario>   with ASSISTANTS_BASE_URL and ASSISTANTS_API_KEY set
//   (ASSISTANTS_OTHER_API_KEY: a second user's key, for isolation checks).
// A scenario prints one JSON object on stdout and exits 0, or prints its error as JSON on stderr and
// exits 1; pytest asserts on either.
import { File } from 'node:buffer';
import OpenAI from 'openai';

// Node 18 (Debian bookworm's nodejs, which scripts/system-deps.sh installs when a machine has no
// node) lacks the global File the SDK's toFile() needs; this is the SDK's own documented remedy.
globalThis.File ??= File;

const BASE_URL = process.env.ASSISTANTS_BASE_URL;
if (!BASE_URL || !BASE_URL.startsWith('http://127.0.0.1:')) {
  // Without a loopback baseURL the SDK would talk to api.openai.com: never from a test.
  process.stderr.write(JSON.stringify({ class: 'Setup', message: `bad ASSISTANTS_BASE_URL: ${BASE_URL}` }));
  process.exit(2);
}

/** Every HTTP request the SDK sends through one client (retries included): [method, path]. */
export class Counter {
  constructor() {
    this.calls = [];
    this.fetch = (url, init) => {
      const target = new URL(String(url));
      // The SDK also probes fetch with a `data:,` URL before its first multipart upload.
      if (target.protocol.startsWith('http')) {
        this.calls.push([(init?.method ?? 'GET').toUpperCase(), target.pathname]);
      }
      return fetch(url, init);
    };
  }

  count(method, suffix = '') {
    return this.calls.filter(([m, p]) => (!method || m === method) && p.endsWith(suffix)).length;
  }
}

/** An SDK client for the live server; `key` defaults to the main test user's. */
export function client({ key = process.env.ASSISTANTS_API_KEY, counter, ...options } = {}) {
  return new OpenAI({
    baseURL: BASE_URL,
    apiKey: key,
    timeout: 30_000,
    ...(counter ? { fetch: counter.fetch } : {}),
    ...options,
  });
}

export const otherKey = () => process.env.ASSISTANTS_OTHER_API_KEY;

export const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

/** What pytest needs to know about an SDK error: its class as the SDK exports it, and its fields. */
export function describeError(err) {
  const sdkClass = Object.entries(OpenAI).find(
    ([name, cls]) => typeof cls === 'function' && name.endsWith('Error') && err?.constructor === cls,
  );
  return {
    class: sdkClass ? sdkClass[0] : err?.constructor?.name ?? typeof err,
    isAPIError: err instanceof OpenAI.APIError,
    status: err?.status ?? null,
    message: String(err?.message ?? err),
    type: err?.type ?? null,
    code: err?.code ?? null,
    param: err?.param ?? null,
    shouldRetry: err?.headers?.get?.('x-should-retry') ?? null,
  };
}

/** The error a promise rejects with, described; fails if it resolves. */
export async function expectError(promise) {
  try {
    await promise;
  } catch (err) {
    return describeError(err);
  }
  throw new Error('expected the call to fail, but it succeeded');
}

export function messageText(messages) {
  return messages
    .flatMap((m) => m.content)
    .filter((part) => part.type === 'text')
    .map((part) => part.text.value)
    .join('');
}

/** Run the scenario named by argv[2]. */
export async function main(scenarios) {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) {
    process.stderr.write(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(', ')}\n`);
    process.exit(2);
  }
  try {
    const result = await scenario();
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } catch (err) {
    process.stderr.write(`${JSON.stringify({ ...describeError(err), stack: err?.stack ?? null })}\n`);
    process.exitCode = 1;
  }
}
