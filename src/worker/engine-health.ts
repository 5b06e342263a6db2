// A worker whose inference thread died fails every job it takes. It stops taking them
// instead: its queue workers close (so /readyz, which counts them, says not ready) and the
// process is told, so `npm run worker` exits non-zero for its supervisor to restart it.
import type { Logger } from '../logger.js';
import type { Engine } from '../models/types.js';

export function stopOnEngineFailure(
  engine: Engine,
  logger: Logger,
  stop: () => Promise<void>,
  onStopped: ((error: Error) => void) | undefined,
): void {
  let failed = false;
  engine.onFailure?.((error) => {
    if (failed) return;
    failed = true;
    logger.fatal({ err: error }, 'an inference thread died: this worker stops taking jobs');
    stop()
      .catch((stopError: unknown) => logger.error({ err: stopError }, 'stopping after the engine failed'))
      .finally(() => onStopped?.(error));
  });
}
