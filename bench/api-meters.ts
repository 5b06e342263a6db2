// What bench:api reads around each round: each child's CPU time from /proc/<pid>/stat, Redis's
// CPU and command counts from INFO; and the child processes it talks to in JSON lines.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Redis } from 'ioredis';

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU time (user + system, every thread) the process has used so far, in ms. */
export function processCpuMs(pid: number): number {
  return cpuMsOf(`/proc/${pid}/stat`);
}

/**
 * CPU time of the process's main thread alone, in ms: in Node its event loop (HTTP, Redis,
 * BullMQ, JSON), apart from the engine's thread, onnxruntime's pool, libuv's and V8's helpers.
 */
export function mainThreadCpuMs(pid: number): number {
  return cpuMsOf(`/proc/${pid}/task/${pid}/stat`);
}

function cpuMsOf(path: string): number {
  // The fields after the command name, which is in parentheses and may hold spaces: state is
  // field 3, utime and stime fields 14 and 15 (proc(5)).
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

export interface RedisSample {
  cpuMs: number;
  /** Calls per command since the server started, INFO's own left out. */
  calls: Map<string, number>;
}

/** Redis's CPU (used_cpu_sys + used_cpu_user) and INFO commandstats, in one INFO. */
export async function redisSample(redis: Redis): Promise<RedisSample> {
  const text = String(await redis.call('INFO', 'cpu', 'commandstats'));
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? NaN);
  const calls = new Map(
    [...text.matchAll(/^cmdstat_(\S+):calls=(\d+)/gm)].map((match) => [match[1], Number(match[2])]),
  );
  calls.delete('info');
  return { cpuMs: (field('used_cpu_sys') + field('used_cpu_user')) * 1000, calls };
}

/** Commands called between two samples, per command. */
export function callsBetween(before: RedisSample, after: RedisSample): Map<string, number> {
  const changed = new Map<string, number>();
  for (const [name, calls] of after.calls) {
    const delta = calls - (before.calls.get(name) ?? 0);
    if (delta > 0) changed.set(name, delta);
  }
  return changed;
}

/** The 1-, 5- and 15-minute load averages. */
export function loadAverage(): [number, number, number] {
  const [one, five, fifteen] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
  return [one, five, fifteen];
}

/** A child process (`node --import tsx entry`) that answers in JSON lines on stdout. */
export interface LineChild {
  pid: number;
  /** The next JSON line it writes. */
  next<T>(): Promise<T>;
  send(message: object | string): void;
  /** Closes its stdin and waits for it to exit (killed after `graceMs`). */
  end(graceMs?: number): Promise<void>;
}

export function spawnLineChild(entry: string, args: string[], env: Record<string, string>): LineChild {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
  const exited = once(child, 'exit');
  const lines: string[] = [];
  const waiting: ((line: string | undefined) => void)[] = [];
  const reader = createInterface({ input: child.stdout! });
  reader.on('line', (line) => {
    const waiter = waiting.shift();
    if (waiter) waiter(line);
    else lines.push(line);
  });
  reader.on('close', () => {
    for (const waiter of waiting.splice(0)) waiter(undefined);
  });
  return {
    pid: child.pid!,
    async next<T>() {
      const line = lines.shift() ?? (await new Promise<string | undefined>((resolve) => waiting.push(resolve)));
      if (line === undefined) throw new Error(`${entry} ended (${child.exitCode ?? child.signalCode}): ${stderr}`);
      return JSON.parse(line) as T;
    },
    send(message) {
      child.stdin?.write(`${typeof message === 'string' ? message : JSON.stringify(message)}\n`);
    },
    async end(graceMs = 10_000) {
      child.stdin?.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      if (child.exitCode === null && child.signalCode === null) await exited;
      clearTimeout(timer);
    },
  };
}
