// Files and vector stores through the official Node SDK: uploads streamed from disk with
// fs.createReadStream (the SDK then sends the multipart body chunked, without a Content-Length),
// uploads from memory with toFile, fileBatches.uploadAndPoll and vectorStores.files.uploadAndPoll.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { toFile } from 'openai';
import { client, main } from './common.mjs';

const c = client();

const ZEBRA =
  'Field notes, chapter three. The plains zebra migration crosses the Mara river every August, ' +
  'following the rains north from the Serengeti. Herds of wildebeest travel with them.\n';
const FILLER = 'Unrelated paragraph about accounting ledgers, invoices and quarterly tax filings.\n';

/** Files on disk, so that the SDK can stream them; removed when the process exits. */
function writeFiles(contents) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-sdk-files-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return Object.entries(contents).map(([name, text]) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  });
}

/** Upload, then read back what the server stored. */
async function uploadAndReadBack(file, text) {
  const created = await c.files.create({ file, purpose: 'assistants' });
  const stored = await (await c.files.content(created.id)).text();
  return {
    object: created.object,
    id_prefix: created.id.slice(0, 5),
    filename: created.filename,
    bytes: created.bytes,
    expected_bytes: Buffer.byteLength(text),
    purpose: created.purpose,
    content_matches: stored === text,
    listed: (await c.files.retrieve(created.id)).id === created.id,
  };
}

async function batchUploadAndPoll(makeUploadable) {
  const texts = { 'zebra.txt': ZEBRA.repeat(3), 'ledger.txt': FILLER.repeat(3) };
  const files = await Promise.all(writeFiles(texts).map(makeUploadable));
  const store = await c.vectorStores.create({ name: 'node-batch' });
  const batch = await c.vectorStores.fileBatches.uploadAndPoll(store.id, { files });
  const listed = [];
  for await (const file of c.vectorStores.fileBatches.listFiles(batch.id, { vector_store_id: store.id })) {
    listed.push(file.status);
  }
  const search = await c.vectorStores.search(store.id, { query: 'zebra migration Mara river' });
  return {
    object: batch.object,
    status: batch.status,
    file_counts: batch.file_counts,
    listed,
    top_hit: search.data[0]?.filename ?? null,
  };
}

const scenarios = {
  async upload_stream() {
    const text = ZEBRA.repeat(800); // ~150 KB: several chunks of the read stream
    const [file] = writeFiles({ 'streamed.txt': text });
    return uploadAndReadBack(fs.createReadStream(file), text);
  },

  async upload_buffer() {
    const text = ZEBRA.repeat(800);
    return uploadAndReadBack(await toFile(Buffer.from(text), 'buffered.txt'), text);
  },

  async batch_upload_and_poll_streams() {
    // The SDK's documented usage: an array of fs.createReadStream(...).
    return batchUploadAndPoll((file) => fs.createReadStream(file));
  },

  async batch_upload_and_poll_buffers() {
    return batchUploadAndPoll(async (file) => toFile(fs.readFileSync(file), path.basename(file)));
  },

  async vector_store_file_upload_and_poll() {
    const store = await c.vectorStores.create({ name: 'node-single' });
    const file = await c.vectorStores.files.uploadAndPoll(
      store.id,
      await toFile(Buffer.from(ZEBRA.repeat(2)), 'single.txt'),
    );
    const stored = await c.vectorStores.retrieve(store.id);
    return { object: file.object, status: file.status, last_error: file.last_error, file_counts: stored.file_counts };
  },
};

await main(scenarios);
