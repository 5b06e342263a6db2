// Process entry helpers shared by the api, worker and start commands.
import { type Config, ConfigError } from './config.js';
import type { Logger } from './logger.js';

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
