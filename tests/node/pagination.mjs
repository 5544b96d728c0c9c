// Cursor pagination through the official Node SDK: `for await` auto-pagination over several pages,
// and the page API (hasNextPage / getNextPage / iterPages).
import { client, Counter, main } from './common.mjs';

const c = client();

const scenarios = {
  async auto_pagination() {
    const thread = await c.beta.threads.create();
    const ids = [];
    for (let i = 0; i < 7; i++) {
      ids.push((await c.beta.threads.messages.create(thread.id, { role: 'user', content: `m${i}` })).id);
    }
    const counter = new Counter();
    const counted = client({ counter });

    const desc = [];
    for await (const message of counted.beta.threads.messages.list(thread.id, { limit: 2 })) desc.push(message.id);
    const descRequests = counter.count('GET', '/messages');

    const asc = [];
    for await (const message of c.beta.threads.messages.list(thread.id, { limit: 3, order: 'asc' })) {
      asc.push(message.id);
    }

    const pages = [];
    for await (const page of (await c.beta.threads.messages.list(thread.id, { limit: 3 })).iterPages()) {
      pages.push(page.data.map((m) => m.id));
    }

    const first = await c.beta.threads.messages.list(thread.id, { limit: 4 });
    const second = first.hasNextPage() ? await first.getNextPage() : null;
    return {
      created: ids,
      desc,
      desc_requests: descRequests,
      asc,
      pages,
      manual: {
        first: first.data.map((m) => m.id),
        first_has_more: first.has_more,
        second: second?.data.map((m) => m.id) ?? null,
        second_has_next: second?.hasNextPage() ?? null,
      },
    };
  },
};

await main(scenarios);
