// npm run keys -- create NAME [--rpm N] [--concurrent N] [--candidates-per-day N] [--json]
//                 list [--json] | revoke ID | rotate-webhook-secret ID
// Manages the API keys in the Redis key store named by REDIS_URL and QUEUE_PREFIX. A key is
// printed once, at creation; only its SHA-256 is stored.
import { parseArgs } from 'node:util';
import type { Limits } from '../config.js';
import { loadConfig } from '../config.js';
import { exitOnConfigError } from '../process.js';
import { type ApiKeyRecord, KeyStore } from '../service/api-keys.js';
import { createRedis } from '../queue/redis.js';

const usage = `usage: npm run keys -- create NAME [--rpm N] [--concurrent N] [--candidates-per-day N] [--json]
       npm run keys -- list [--json]
       npm run keys -- revoke ID
       npm run keys -- rotate-webhook-secret ID`;

function limit(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]+$/.test(text) || Number(text) < 1)
    throw new Error(`--${name} must be a positive integer, got "${text}"\n${usage}`);
  return Number(text);
}

function describe(record: ApiKeyRecord): string {
  const limits =
    Object.entries(record.limits)
      .map(([name, value]) => `${name}=${value}`)
      .join(' ') || 'defaults';
  return `${record.id}\t${record.name}\t${record.created_at}\t${record.revoked ? 'revoked' : 'active'}\t${limits}`;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rpm: { type: 'string' },
      concurrent: { type: 'string' },
      'candidates-per-day': { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const [command, argument] = positionals;
  const config = exitOnConfigError(() => loadConfig(process.env));
  const redis = createRedis(config.redis, 'commands');
  const store = new KeyStore({ redis }, config);
  const print = (json: unknown, text: string) => console.log(values.json ? JSON.stringify(json) : text);
  try {
    switch (command) {
      case 'create': {
        if (!argument || !/^[A-Za-z0-9_.-]{1,64}$/.test(argument))
          throw new Error(`a NAME of A-Z a-z 0-9 _ . - is required\n${usage}`);
        const limits: Limits = {
          ...(values.rpm !== undefined && { requests_per_minute: limit('rpm', values.rpm) }),
          ...(values.concurrent !== undefined && { concurrent_generations: limit('concurrent', values.concurrent) }),
          ...(values['candidates-per-day'] !== undefined && {
            candidates_per_day: limit('candidates-per-day', values['candidates-per-day']),
          }),
        };
        const { key, record } = await store.create(argument, limits);
        print(
          { ...record, key },
          `id: ${record.id}\nname: ${record.name}\nkey: ${key}\nwebhook_secret: ${record.webhook_secret}\nThe key is shown only now; store it safely.`,
        );
        return 0;
      }
      case 'list': {
        const records = (await store.list()).map(({ webhook_secret: _secret, ...rest }) => rest);
        print(records, records.length === 0 ? 'no keys' : records.map((record) => describe(record)).join('\n'));
        return 0;
      }
      case 'revoke':
      case 'rotate-webhook-secret': {
        if (!argument) throw new Error(`an ID is required\n${usage}`);
        if (command === 'revoke') {
          if (!(await store.revoke(argument))) throw new Error(`no key ${argument}`);
          print({ id: argument, revoked: true }, `revoked ${argument}`);
        } else {
          const secret = await store.rotateWebhookSecret(argument);
          if (secret === null) throw new Error(`no key ${argument}`);
          print({ id: argument, webhook_secret: secret }, `webhook_secret: ${secret}`);
        }
        return 0;
      }
      default:
        throw new Error(usage);
    }
  } finally {
    redis.disconnect();
  }
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    console.error(error.message);
    process.exit(2);
  },
);
