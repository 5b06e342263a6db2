import { type Logger, pino } from 'pino';

/** JSON logs; each request and job gets a child logger carrying its id. */
export function createLogger(level: string, name: string): Logger {
  return pino({ name, level });
}
export type { Logger };
