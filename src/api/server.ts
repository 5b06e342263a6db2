import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import { redisStartupHint } from '../process.js';
import { waitForRedis } from '../queue/redis.js';
import { buildApp } from './app.js';
import { createServices } from './services.js';

/** Builds the app and listens; `stop` stops accepting, finishes in-flight requests, closes Redis. */
export async function startApi(config: Config, logger: Logger) {
  await waitForRedis(config.redis, config.redisStartupWaitMs, logger, redisStartupHint(config));
  const services = createServices(config);
  const app = await buildApp({ services, logger });
  await app.listen({ port: config.port, host: config.host });
  return {
    app,
    async stop() {
      await app.close();
      await services.close();
    },
  };
}
