// Follows GET /generations/:id/events over fetch rather than EventSource, which cannot send the
// Authorization header. A dropped connection resumes with Last-Event-ID.
import { authHeaders, problemOf } from './api.js';

const MAX_RECONNECTS = 5;

function parseFrame(block) {
  const frame = {};
  for (const line of block.split('\n')) {
    const match = /^(id|event|data): ?(.*)$/.exec(line);
    if (match) frame[match[1]] = match[2];
  }
  return frame;
}

/** Calls onEvent(name, body) for each event; resolves with the terminal event's body. */
export async function followEvents(url, onEvent) {
  let lastEventId;
  for (let reconnects = 0; reconnects <= MAX_RECONNECTS; reconnects++) {
    let response;
    try {
      response = await fetch(url, {
        headers: {
          accept: 'text/event-stream',
          ...authHeaders(),
          ...(lastEventId && { 'last-event-id': lastEventId }),
        },
      });
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    if (!response.ok) throw await problemOf(response);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (frame.data === undefined) continue;
          if (frame.id) lastEventId = frame.id;
          const body = JSON.parse(frame.data);
          onEvent(frame.event, body);
          if (frame.event === 'completed') return body;
        }
      }
    } catch {
      // The connection dropped: reconnect and resume after the last event seen.
    }
  }
  throw new Error('lost the connection to the event stream');
}
