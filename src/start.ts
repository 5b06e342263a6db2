// `npm start`: the API and one worker in one process on embedded defaults and ./.env. When
// REDIS_URL is unset and no Redis answers on the default address, a redis-server child is
// started (on 6379, or any free port) and stopped on exit.
import { type ChildProcess, spawn } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { startApi } from './api/server.js';
import { loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { exitOnConfigError, exitOnStartFailure, loadEnvFile, onShutdownSignal, reportEnvFile } from './process.js';
import { startWorker } from './worker/worker.js';

function answers(url: string, timeoutMs = 1000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port || 6379) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

function freePort(preferred: number): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => {
      const fallback = createServer().listen(0, '127.0.0.1', () => {
        const { port } = fallback.address() as { port: number };
        fallback.close(() => resolve(port));
      });
    });
    server.listen(preferred, '127.0.0.1', () => server.close(() => resolve(preferred)));
  });
}

async function startRedis(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort(6379);
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50; i += 1) {
    if (child.exitCode !== null) break;
    if (await answers(url)) return { url, child };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill();
  throw new Error('redis-server did not start; install Redis or set REDIS_URL');
}

// Settings from ./.env first (the environment wins over it), then the local quick start's: open
// unless keys are configured, serving this machine only unless HOST says otherwise.
const envFile = loadEnvFile('.env', process.env);
const env = { HOST: '127.0.0.1', ...(process.env.API_KEYS ? {} : { AUTH_MODE: 'open' }), ...process.env };
let config = exitOnConfigError(() => loadConfig(env));
const logger = createLogger(config.logLevel, 'dalle-serve', config.logFormat);
reportEnvFile(logger, envFile);
let redis: ChildProcess | undefined;
if (config.redis.kind === 'single' && config.redisUrlIsDefault && !(await answers(config.redis.url))) {
  const started = await startRedis();
  redis = started.child;
  logger.info({ redisUrl: started.url }, 'started a redis-server child');
  config = loadConfig({ ...env, REDIS_URL: started.url });
}
const stopRedis = () => redis?.kill('SIGTERM');
process.on('exit', stopRedis);
try {
  const worker = await startWorker(config, logger.child({ role: 'worker' }));
  const api = await startApi(config, logger.child({ role: 'api' }));
  logger.info({ url: config.publicBaseUrl, docs: `${config.publicBaseUrl}/docs` }, 'dalle-serve is up');
  onShutdownSignal(logger, async () => {
    await api.stop();
    await worker.stop();
    stopRedis();
  });
} catch (error) {
  stopRedis();
  exitOnStartFailure(logger, error);
}
