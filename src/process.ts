// Process entry helpers shared by the api, worker and start commands.
import { readFileSync } from 'node:fs';
import * as util from 'node:util';
import { type Config, ConfigError } from './config.js';
import type { Logger } from './logger.js';

/**
 * What became of a `.env` file: absent, left unread by this Node, or read (`applied`: the names
 * it set; `kept`: the names it holds that the environment had set already).
 */
export type EnvFile =
  | { status: 'absent' | 'unsupported'; path: string }
  | { status: 'read'; path: string; applied: string[]; kept: string[] };

/**
 * Reads settings from a `.env` file (KEY=value lines, parsed by Node's own `util.parseEnv`) into
 * `env`, as `node --env-file-if-exists` would: a variable the environment already sets wins,
 * even when empty, and a missing file is no error. Node's flag is not on every Node this runs on
 * (v22.9, backported late into 20), nor `parseEnv` (20.12): without it the file is left unread.
 */
export function loadEnvFile(path: string, env: Record<string, string | undefined>): EnvFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { status: 'absent', path };
    throw error;
  }
  // A namespace import: a named import of a missing export would fail on Node 20.9 at load.
  const parseEnv = util.parseEnv as typeof util.parseEnv | undefined;
  if (typeof parseEnv !== 'function') return { status: 'unsupported', path };
  const applied: string[] = [];
  const kept: string[] = [];
  // Sorted: Node's parser keeps no order.
  for (const [name, value] of Object.entries(parseEnv(text)).sort(([a], [b]) => a.localeCompare(b))) {
    if (value === undefined) continue;
    if (env[name] !== undefined) {
      kept.push(name);
    } else {
      env[name] = value;
      applied.push(name);
    }
  }
  return { status: 'read', path, applied, kept };
}

/** Says at start whether settings came from a `.env` file (the names only: values may be secrets). */
export function reportEnvFile(logger: Logger, file: EnvFile): void {
  if (file.status === 'read') {
    logger.info({ file: file.path, variables: file.applied, alreadySet: file.kept }, `read settings from ${file.path}`);
  } else if (file.status === 'unsupported') {
    logger.warn({ file: file.path }, `${file.path} not read: reading it needs Node 20.12 or later`);
  }
}

export function exitOnConfigError<T>(load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

/** What to say of a process that could not start: what went wrong, in the log line itself. */
export function exitOnStartFailure(logger: Logger, error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  logger.fatal({ err: error }, `start failed: ${message}`);
  process.exit(1);
}

/** What to do when Redis does not answer at start, for the message that says so. */
export function redisStartupHint(config: Pick<Config, 'redisUrlIsDefault'>): string {
  return config.redisUrlIsDefault
    ? 'start Redis (redis-server), or set REDIS_URL to one that runs'
    : 'start Redis there, point REDIS_URL at one that runs, or leave REDIS_URL unset for `npm start` to start its own';
}

/** Runs `stop` once on SIGTERM or SIGINT, then exits; a second signal exits at once. */
export function onShutdownSignal(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}
