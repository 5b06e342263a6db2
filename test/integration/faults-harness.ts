// Real processes for the fault tests: the worker (and the API) as child processes whose
// output is kept for assertions and failure messages, and a private redis-server that a
// test may stop and restart (never the shared one).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { freePort } from './api-harness.js';

export interface Service {
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Kills the process (SIGKILL by default) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnService(entry: string, env: Record<string, string>): Service {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  const keep = (chunk: Buffer) => {
    text = (text + chunk.toString()).slice(-200_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return {
    child,
    output: () => text,
    exited,
    async stop(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** Polls `check` until it returns a truthy value; fails naming `what` after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => Promise<T> | T,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
}

/** Waits until the API's /readyz answers `status`. */
export function waitReadyz(baseUrl: string, status: 200 | 503, timeoutMs = 60_000): Promise<boolean> {
  return until(`readyz ${status}`, async () => (await fetch(`${baseUrl}/readyz`)).status === status, timeoutMs, 200);
}

export interface PrivateRedis {
  url: string;
  start(): Promise<void>;
  /** Graceful stop (SIGTERM): Redis writes its append-only file before it exits. */
  stop(): Promise<void>;
}

/**
 * A redis-server of the test's own on a free loopback port, persisting to `dir` with AOF
 * (without, when `persist` is false: a test that counts commands, not one that restarts it).
 */
export async function privateRedis(dir: string, { persist = true } = {}): Promise<PrivateRedis> {
  const port = await freePort();
  let server: Service | undefined;
  const url = `redis://127.0.0.1:${port}`;
  return {
    url,
    async start() {
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--appendonly',
          persist ? 'yes' : 'no',
          '--appendfsync',
          'always',
          '--save',
          '',
          '--dir',
          dir,
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let text = '';
      child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
      child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
      const exited = once(child, 'exit').then(([code]) => code as number | null);
      server = {
        child,
        output: () => text,
        exited,
        async stop(signal = 'SIGTERM') {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          await exited;
        },
      };
      await until(
        `redis-server on ${port} (${text})`,
        async () => {
          const client = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
          client.on('error', () => {});
          try {
            await client.connect();
            return (await client.ping()) === 'PONG';
          } finally {
            client.disconnect();
          }
        },
        10_000,
        50,
      );
    },
    async stop() {
      await server?.stop('SIGTERM');
      server = undefined;
    },
  };
}
