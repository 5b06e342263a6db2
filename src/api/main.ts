// The API process: `npm run api`.
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { exitOnConfigError, exitOnStartFailure, onShutdownSignal } from '../process.js';
import { startApi } from './server.js';

const config = exitOnConfigError(() => loadConfig(process.env));
const logger = createLogger(config.logLevel, 'api', config.logFormat);
const api = await startApi(config, logger).catch((error: unknown) => exitOnStartFailure(logger, error));
onShutdownSignal(logger, () => api.stop());
