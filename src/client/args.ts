// What every command shares: the global options, where the service is, and argument checks.
import type { Connection } from './api.js';

/** The service's own default (PORT 3000, `npm start` on loopback). */
const DEFAULT_URL = 'http://127.0.0.1:3000';

export const GLOBAL_OPTIONS = {
  url: { type: 'string' },
  key: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const GLOBAL_USAGE = `global options:
  --url URL    the service (default $DALLE_SERVE_URL or ${DEFAULT_URL})
  --key KEY    API key, sent as Authorization: Bearer (default $DALLE_SERVE_API_KEY)
  -h, --help   this help`;

/** What a command reads and writes besides its arguments. */
export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: Record<string, string | undefined>;
}

/** Wrong arguments: printed with a pointer to the command's --help, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export function connection(values: { url?: string; key?: string }, env: Io['env']): Connection {
  const url = values.url ?? env.DALLE_SERVE_URL ?? DEFAULT_URL;
  const key = values.key ?? env.DALLE_SERVE_API_KEY;
  return { url: url.replace(/\/+$/, ''), ...(key && { key }) };
}

/** `value` as an integer, or undefined when the option was not given. */
export function integer(value: string | undefined, option: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${option} takes a whole number, not "${value}"`);
  return Number(value);
}

/** The one positional a command takes, or a UsageError. */
export function single(positionals: string[], what: string): string {
  if (positionals.length !== 1) throw new UsageError(`give one ${what}`);
  return positionals[0];
}

/** Prints a command's usage for --help: exit status 0. */
export function help(io: Io, usage: string): number {
  io.stdout.write(`${usage}\n`);
  return 0;
}
