// GET /generations/:id/events: the generation's event log as server-sent events. Each event's
// data is its webhook body (GET /generations/:id as of the event, plus `event`); `id:` is the
// event id, so `Last-Event-ID` resumes after it. The stream ends after the terminal event.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { isTerminal } from '../contracts/status.js';
import type { EventHub } from '../service/event-hub.js';
import {
  type GenerationEvent,
  type GenerationEventBody,
  type GenerationEventLog,
  renderEvent,
  terminalEventId,
} from '../service/generation-events.js';
import type { Generations } from '../service/generations.js';
import type { GenerationRecord } from '../service/lifecycle.js';
import type { ObjectStore } from '../storage/index.js';

export interface EventStreamDeps {
  config: Config;
  store: ObjectStore;
  generations: Generations;
  log: GenerationEventLog;
  hub: EventHub;
}

/** The open streams of this process, ended when the server closes. */
const openStreams = new Set<() => void>();

export function endAllStreams(): void {
  for (const end of [...openStreams]) end();
}

/** Event streams open in this process (the metric `dalle_event_streams_open`). */
export function openStreamCount(): number {
  return openStreams.size;
}

function lastEventId(request: FastifyRequest): string | undefined {
  const header = request.headers['last-event-id'];
  return typeof header === 'string' && header.length > 0 ? header : undefined;
}

function frame(body: GenerationEventBody, id: string): string {
  return `id: ${id}\nevent: ${body.event}\ndata: ${JSON.stringify(body)}\n\n`;
}

interface Backlog {
  /** Logged events to send at once, oldest first. */
  events: GenerationEvent[];
  /** The entry after which following the log starts. */
  cursor: string;
  /** Nothing follows: the terminal event is among `events`, or the client has it already. */
  done: boolean;
  /** A terminal event made from the record itself, for a generation whose log has expired. */
  synthetic?: GenerationEventBody;
}

/**
 * What to send at once. A finished generation gets its terminal event alone; a client resuming
 * gets whatever it has not seen yet.
 */
async function backlog(
  deps: EventStreamDeps,
  record: GenerationRecord,
  resumeFrom: string | undefined,
): Promise<Backlog> {
  const id = record.id;
  const resumeEntry = resumeFrom === undefined ? null : await deps.log.entryIdOf(id, resumeFrom);
  if (resumeEntry !== null && resumeFrom === terminalEventId(id))
    return { events: [], cursor: resumeEntry, done: true };
  if (resumeEntry === null) {
    const terminal = await deps.log.terminal(id);
    if (terminal) return { events: [terminal], cursor: terminal.entryId, done: true };
    // Its log expired: the terminal event from the record itself.
    const view = await deps.generations.view(record);
    if (isTerminal(view.status))
      return { events: [], cursor: '0-0', done: true, synthetic: { ...view, event: 'completed' } };
  }
  const events = await deps.log.read(id, resumeEntry ?? '0-0');
  return {
    events,
    cursor: events.at(-1)?.entryId ?? resumeEntry ?? '0-0',
    done: events.some((event) => event.event === 'completed'),
  };
}

interface SseResponse {
  write(text: string): void;
  /** Ends the response once; `onEnd` callbacks run then (also when the client goes away). */
  end(): void;
  readonly ended: boolean;
  onEnd(callback: () => void): void;
}

/** Takes the response over from Fastify and starts the stream: headers, heartbeat, cleanup on close. */
function openSse(request: FastifyRequest, reply: FastifyReply, heartbeatMs: number): SseResponse {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': request.id,
  });
  raw.flushHeaders();
  const callbacks: (() => void)[] = [];
  let ended = false;
  const heartbeat = setInterval(() => raw.write(': heartbeat\n\n'), heartbeatMs);
  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(heartbeat);
    openStreams.delete(end);
    for (const callback of callbacks) callback();
    raw.end();
  };
  openStreams.add(end);
  raw.on('close', end);
  // A client gone while the backlog was read has closed already: no 'close' is coming.
  if (request.raw.socket.destroyed) end();
  return {
    write: (text) => raw.write(text),
    end,
    get ended() {
      return ended;
    },
    onEnd: (callback) => callbacks.push(callback),
  };
}

export async function streamEvents(
  deps: EventStreamDeps,
  generationId: string,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const record = await deps.generations.record(generationId, request.principal.id);
  const id = record.id;
  const start = await backlog(deps, record, lastEventId(request));
  const sse = openSse(request, reply, deps.config.sseHeartbeatMs);
  if (start.synthetic) {
    sse.write(frame(start.synthetic, terminalEventId(id)));
    return sse.end();
  }

  // Rendering is asynchronous; a chain keeps the events in log order.
  let chain = Promise.resolve();
  const send = (event: GenerationEvent) => {
    chain = chain
      .then(async () => {
        if (sse.ended) return;
        // Read again for what changes after the event (a webhook given up on); gone once deleted.
        const current = (await deps.generations.lifecycle.read(id)) ?? record;
        sse.write(frame(await renderEvent(deps.config, deps.store, current, event), event.id));
        if (event.event === 'completed') sse.end();
      })
      .catch((error) => {
        request.log.warn({ err: error }, 'event stream ended by a failed read');
        sse.end();
      });
  };
  for (const event of start.events) send(event);
  if (start.done) {
    await chain;
    return sse.end();
  }
  if (!sse.ended) sse.onEnd(deps.hub.subscribe(id, start.cursor, send));
}
