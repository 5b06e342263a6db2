// A small server-sent events reader over fetch for the tests: frames as they arrive, comments
// (heartbeats) included, and the response's status for the error cases.

export interface SseFrame {
  id?: string;
  event?: string;
  data?: string;
  /** A comment line (`: …`), such as a heartbeat. */
  comment?: string;
}

export interface SseStream {
  status: number;
  contentType: string | null;
  /** Frames in arrival order; ends when the server closes the stream. */
  frames: AsyncGenerator<SseFrame>;
  /** Drops the connection. */
  close(): void;
}

export async function openEventStream(
  url: string,
  { headers = {}, lastEventId }: { headers?: Record<string, string>; lastEventId?: string } = {},
): Promise<SseStream> {
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers, ...(lastEventId && { 'last-event-id': lastEventId }) },
    signal: controller.signal,
  });
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    frames: readFrames(response, controller.signal),
    close: () => controller.abort(),
  };
}

async function* readFrames(response: Response, signal: AbortSignal): AsyncGenerator<SseFrame> {
  if (!response.body) return;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        yield parseFrame(block);
      }
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  }
}

function parseFrame(block: string): SseFrame {
  const frame: SseFrame = {};
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) frame.comment = line.slice(1).trim();
    const match = /^(id|event|data): ?(.*)$/.exec(line);
    if (match) frame[match[1] as 'id' | 'event' | 'data'] = match[2];
  }
  return frame;
}

/** Reads frames until `stop` holds for the last one (or the stream ends); returns the event frames. */
export async function collectEvents(stream: SseStream, stop: (frame: SseFrame) => boolean = () => false) {
  const events: { id: string; event: string; body: any }[] = [];
  for await (const frame of stream.frames) {
    if (frame.data !== undefined)
      events.push({ id: frame.id ?? '', event: frame.event ?? '', body: JSON.parse(frame.data) });
    if (stop(frame)) break;
  }
  return events;
}
