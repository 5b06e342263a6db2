import { type DestinationStream, type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

/** LOG_FORMAT: `auto` is pretty on a terminal and JSON anywhere else. */
export type LogFormat = 'auto' | 'json' | 'pretty';

/** What the lines look like: `format` as asked, `auto` decided by whether stdout is a terminal. */
export function logOutput(format: LogFormat, stdoutIsTTY: boolean): 'json' | 'pretty' {
  if (format === 'auto') return stdoutIsTTY ? 'pretty' : 'json';
  return format;
}

/**
 * The process's logger: JSON lines on stdout for machines (each request and job gets a child
 * logger carrying its id), or the same lines made readable for a person at a terminal.
 */
export function createLogger(level: string, name: string, format: LogFormat = 'json'): Logger {
  if (logOutput(format, process.stdout.isTTY === true) === 'json') return pino({ name, level });
  return pino({ name, level }, prettyStream());
}

/**
 * pino-pretty in this thread, writing synchronously, so that the line a failed start writes
 * before `process.exit(1)` is not lost (as it could be from a transport's worker thread).
 */
function prettyStream(): DestinationStream {
  return pretty({ sync: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' });
}

export type { Logger };
