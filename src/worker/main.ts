// One worker process per GPU: `npm run worker`. SIGTERM finishes or returns running jobs.
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { exitOnConfigError, exitOnStartFailure, loadEnvFile, onShutdownSignal, reportEnvFile } from '../process.js';
import { startWorker } from './worker.js';

// ./.env, when there is one, fills in what the environment leaves unset.
const envFile = loadEnvFile('.env', process.env);
const config = exitOnConfigError(() => loadConfig(process.env));
const logger = createLogger(config.logLevel, 'worker', config.logFormat);
reportEnvFile(logger, envFile);
// A dead inference thread stops the worker; exiting non-zero lets its supervisor restart it.
const worker = await startWorker(config, logger, { onEngineFailure: () => process.exit(1) }).catch((error: unknown) =>
  exitOnStartFailure(logger, error),
);
onShutdownSignal(logger, () => worker.stop());
