// The client's event-stream parser: events as the format defines them, however the bytes are cut.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ServerEvent, serverEvents } from '../../src/client/events.js';

const encoder = new TextEncoder();

async function parse(chunks: (string | Uint8Array)[]): Promise<ServerEvent[]> {
  async function* body() {
    for (const chunk of chunks) yield typeof chunk === 'string' ? encoder.encode(chunk) : chunk;
  }
  const events: ServerEvent[] = [];
  for await (const event of serverEvents(body())) events.push(event);
  return events;
}

const STREAM =
  'id: g-start\nevent: start\ndata: {"status":"processing"}\n\n' +
  ': heartbeat\n\n' +
  'id: g-completed\r\nevent: completed\r\ndata: {"a":\r\ndata:1}\r\n\r\n';

test('fields, comments skipped, data lines joined, any line ending', async () => {
  assert.deepEqual(await parse([STREAM]), [
    { id: 'g-start', event: 'start', data: '{"status":"processing"}' },
    { id: 'g-completed', event: 'completed', data: '{"a":\n1}' },
  ]);
});

test('the same events whatever the chunks, a \\r\\n cut in two and a multi-byte character included', async () => {
  const text = `${STREAM}data: é\r\n\r\n`;
  const expected = await parse([text]);
  assert.equal(expected[2].data, 'é');
  const bytes = encoder.encode(text);
  for (let cut = 1; cut < bytes.length; cut++)
    assert.deepEqual(await parse([bytes.slice(0, cut), bytes.slice(cut)]), expected, `cut at ${cut}`);
});

test('an event is only yielded once its blank line arrives', async () => {
  assert.deepEqual(await parse(['id: x\ndata: 1\n']), []);
  assert.deepEqual(await parse(['data\n\n']), [{ data: '' }]);
});
