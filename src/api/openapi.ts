// The OpenAPI document as the routes describe it, built without touching Redis (queues
// connect on first use) from the embedded default configuration.
import { pino } from 'pino';
import { loadConfig } from '../config.js';
import { buildApp } from './app.js';
import { createServices } from './services.js';

export async function generateOpenApi(): Promise<object> {
  const services = createServices(loadConfig({}));
  const app = await buildApp({ services, logger: pino({ level: 'silent' }) });
  try {
    await app.ready();
    return app.swagger();
  } finally {
    await app.close();
    await services.close();
  }
}

export function serializeOpenApi(document: object): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}
