// A generation's server-sent events (docs/events.md), read with fetch: openapi-fetch answers a
// whole body, and the stream is read as it arrives. The parser follows the event-stream format
// (fields per line, a blank line ends an event, `:` lines are comments such as heartbeats).
import { setTimeout as delay } from 'node:timers/promises';
import { type Connection, type Generation, ClientError, authHeaders, failure, reach } from './api.js';

export interface ServerEvent {
  id?: string;
  event?: string;
  data: string;
}

/** The events of a text/event-stream body, as they arrive. */
export async function* serverEvents(body: AsyncIterable<Uint8Array>): AsyncGenerator<ServerEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event: Partial<ServerEvent> = {};
  let data: string[] = [];
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    // A line ends at \n, \r\n or \r; a \r last in the buffer may be half of a \r\n still coming.
    const lines = buffer.split(/\r\n|\r(?!$)|\n/);
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line === '') {
        if (data.length > 0) yield { ...event, data: data.join('\n') };
        event = {};
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field === 'id' || field === 'event') event[field] = value;
    }
  }
}

export interface FollowOptions {
  /** Called with the generation as each event before `completed` shows it. */
  onEvent?: (generation: Generation) => void;
  signal?: AbortSignal;
}

/** How often a stream that ends before `completed` (a proxy's timeout, a restart) is resumed. */
const RESUMES = 5;
const RESUME_DELAY_MS = 500;

/** Follows a generation's events to `completed`, and answers the generation as that event shows it. */
export async function followGeneration(
  connection: Connection,
  id: string,
  { onEvent, signal }: FollowOptions = {},
): Promise<Generation> {
  let lastEventId: string | undefined;
  for (let resumes = 0; ; resumes++) {
    const response = await reach(`${connection.url}/generations/${encodeURIComponent(id)}/events`, {
      headers: {
        accept: 'text/event-stream',
        ...authHeaders(connection),
        ...(lastEventId && { 'last-event-id': lastEventId }),
      },
      signal,
    });
    if (!response.ok || !response.body) throw await failure(response);
    try {
      for await (const event of serverEvents(response.body)) {
        if (event.id) lastEventId = event.id;
        // The data is the Generation schema plus `event` (docs/events.md).
        const generation = JSON.parse(event.data) as Generation;
        if (event.event === 'completed') return generation;
        onEvent?.(generation);
        resumes = 0;
      }
    } catch (error) {
      // A connection dropped mid-stream is resumed like one closed early.
      if (signal?.aborted || !(error instanceof TypeError)) throw error;
    }
    if (resumes >= RESUMES) throw new ClientError('stream_ended', `the event stream of ${id} ended before completed`);
    await delay(RESUME_DELAY_MS, undefined, { signal });
  }
}
