// A Lua script sent by its SHA (EVALSHA) and loaded with EVAL only when the server lacks it (a
// restarted Redis, a new replica): the script's text crosses the wire once per server, not per call.
import { createHash } from 'node:crypto';
import type { RedisClient } from './redis.js';

export type ScriptArg = string | number;

export class RedisScript {
  private readonly sha: string;

  constructor(private readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  /** The script's reply as an array of strings (numbers as their text), the shape of every script here. */
  async runList(redis: RedisClient, keys: readonly string[], args: readonly ScriptArg[]): Promise<string[]> {
    const reply = await this.run(redis, keys, args);
    if (!Array.isArray(reply)) throw new Error(`a script answered ${typeof reply}, not a list`);
    return reply.map((item: unknown) => {
      if (typeof item !== 'string' && typeof item !== 'number') throw new Error('a script answered a nested list');
      return String(item);
    });
  }

  async run(redis: RedisClient, keys: readonly string[], args: readonly ScriptArg[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}
