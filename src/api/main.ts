// The API process: `npm run api`.
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { exitOnConfigError, exitOnStartFailure, loadEnvFile, onShutdownSignal, reportEnvFile } from '../process.js';
import { startApi } from './server.js';

// ./.env, when there is one, fills in what the environment leaves unset.
const envFile = loadEnvFile('.env', process.env);
const config = exitOnConfigError(() => loadConfig(process.env));
const logger = createLogger(config.logLevel, 'api', config.logFormat);
reportEnvFile(logger, envFile);
const api = await startApi(config, logger).catch((error: unknown) => exitOnStartFailure(logger, error));
onShutdownSignal(logger, () => api.stop());
