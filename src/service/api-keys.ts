// API keys: those from config (API_KEYS) and those in the Redis key store (`npm run keys`).
// Keys are random 32-byte secrets, so a plain SHA-256 is enough to keep them unusable if
// Redis leaks: there is nothing to brute-force that a slow password hash would protect.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { RedisClient } from '../queue/redis.js';
import { Type } from '@fastify/type-provider-typebox';
import type { Config, Limits } from '../config.js';
import { generateWebhookSecret, parseWebhookSecret } from '../webhooks/secret.js';
import { type ServiceKeys, serviceKeys } from './redis-keys.js';
import { jsonCodec } from './redis-codec.js';

/** A stored key's limits, as `npm run keys` writes them: each one a whole number, or absent. */
const storedLimits = jsonCodec(
  Type.Object({
    requests_per_minute: Type.Optional(Type.Integer({ minimum: 1 })),
    concurrent_generations: Type.Optional(Type.Integer({ minimum: 1 })),
    candidates_per_day: Type.Optional(Type.Integer({ minimum: 1 })),
  }),
);

/** The owner of requests and generations in open mode (AUTH_MODE=open). */
export const ANONYMOUS = 'anonymous';
const KEY_PREFIX = 'dsk_';

export interface ApiKeyRecord {
  id: string;
  name: string;
  created_at: string;
  revoked: boolean;
  /** Overrides of the config's default limits (a missing field takes the default). */
  limits: Limits;
  /** Signs this key's webhooks; without one, a secret derived from WEBHOOK_SECRET and the id. */
  webhook_secret?: string;
}

/** Who a request acts for, with the limits that apply to it. */
export interface Principal {
  id: string;
  name: string;
  limits: Limits;
  webhookSecret: string | undefined;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function configKeyId(name: string): string {
  return `cfg-${name}`;
}

function fromHash(fields: Record<string, string>): ApiKeyRecord | null {
  if (!fields.id) return null;
  return {
    id: fields.id,
    name: fields.name,
    created_at: fields.created_at,
    revoked: fields.revoked === '1',
    limits: storedLimits.decode(fields.limits || '{}', `the limits of key ${fields.id}`),
    ...(fields.webhook_secret && { webhook_secret: fields.webhook_secret }),
  };
}

/**
 * The webhook secret of a key that has none of its own (every API_KEYS key): HMAC-SHA256 of
 * the key id under WEBHOOK_SECRET, so each key's differs, no other key's receiver accepts it,
 * and every process computes the same one without storing it. `anonymous` (open mode, a
 * single client) signs with WEBHOOK_SECRET itself.
 */
export function derivedWebhookSecret(webhookSecret: string | undefined, owner: string): string | undefined {
  if (webhookSecret === undefined || owner === ANONYMOUS) return webhookSecret;
  const key = createHmac('sha256', parseWebhookSecret(webhookSecret))
    .update(`dalle-serve key webhook secret\n${owner}`)
    .digest();
  return `whsec_${key.toString('base64')}`;
}

/** The secret that signs the webhooks of generations owned by `owner`. */
export async function ownerWebhookSecret(
  redis: RedisClient,
  keys: ServiceKeys,
  owner: string,
  webhookSecret: string | undefined,
): Promise<string | undefined> {
  const stored =
    owner === ANONYMOUS || owner.startsWith('cfg-') ? null : await redis.hget(keys.apiKey(owner), 'webhook_secret');
  return stored ?? derivedWebhookSecret(webhookSecret, owner);
}

export class KeyStore {
  private readonly keys: ServiceKeys;
  private readonly configKeys: Map<string, Principal>;

  /** `connection` is read lazily (the API's Queues, or an object holding a CLI's Redis). */
  constructor(
    private readonly connection: { readonly redis: RedisClient },
    private readonly config: Pick<Config, 'queuePrefix' | 'apiKeys' | 'limits' | 'webhookSecret' | 'authMode'>,
  ) {
    this.keys = serviceKeys(config.queuePrefix);
    this.configKeys = new Map(
      config.apiKeys.map(({ name, hash }) => [
        hash,
        {
          id: configKeyId(name),
          name,
          limits: { ...config.limits },
          webhookSecret: derivedWebhookSecret(config.webhookSecret, configKeyId(name)),
        },
      ]),
    );
  }

  private get redis(): RedisClient {
    return this.connection.redis;
  }

  /** Open mode is configured (AUTH_MODE=open), never inferred from what Redis holds. */
  get isOpen(): boolean {
    return this.config.authMode === 'open';
  }

  /** Whether any key could authenticate: for the start-up warning of a closed API with none. */
  async hasKeys(): Promise<boolean> {
    return this.configKeys.size > 0 || (await this.redis.scard(this.keys.apiKeyIds)) > 0;
  }

  anonymous(): Principal {
    return {
      id: ANONYMOUS,
      name: ANONYMOUS,
      limits: { ...this.config.limits },
      webhookSecret: this.config.webhookSecret,
    };
  }

  /** The principal a presented key stands for, or null when it is unknown or revoked. */
  async authenticate(key: string): Promise<Principal | null> {
    const hash = hashApiKey(key);
    const fromConfig = this.configKeys.get(hash);
    if (fromConfig) return fromConfig;
    const id = await this.redis.get(this.keys.apiKeyByHash(hash));
    if (id === null) return null;
    const record = await this.get(id);
    if (!record || record.revoked) return null;
    return {
      id: record.id,
      name: record.name,
      limits: { ...this.config.limits, ...record.limits },
      webhookSecret: record.webhook_secret ?? derivedWebhookSecret(this.config.webhookSecret, record.id),
    };
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    return fromHash(await this.redis.hgetall(this.keys.apiKey(id)));
  }

  /** Creates a key; the key itself is returned once and only its hash is kept. */
  async create(name: string, limits: Limits = {}): Promise<{ key: string; record: ApiKeyRecord }> {
    const key = KEY_PREFIX + randomBytes(32).toString('base64url');
    const webhookSecret = generateWebhookSecret();
    const record: ApiKeyRecord = {
      id: `key_${randomBytes(8).toString('hex')}`,
      name,
      created_at: new Date().toISOString(),
      revoked: false,
      limits,
      webhook_secret: webhookSecret,
    };
    await this.redis
      .multi()
      .hset(this.keys.apiKey(record.id), {
        id: record.id,
        name,
        hash: hashApiKey(key),
        created_at: record.created_at,
        revoked: '0',
        limits: JSON.stringify(limits),
        webhook_secret: webhookSecret,
      })
      .set(this.keys.apiKeyByHash(hashApiKey(key)), record.id)
      .sadd(this.keys.apiKeyIds, record.id)
      .exec();
    return { key, record };
  }

  async list(): Promise<ApiKeyRecord[]> {
    const ids = (await this.redis.smembers(this.keys.apiKeyIds)).sort();
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records
      .filter((record): record is ApiKeyRecord => record !== null)
      .sort((a, b) => a.created_at.localeCompare(b.created_at));
  }

  async revoke(id: string): Promise<boolean> {
    if (!(await this.redis.exists(this.keys.apiKey(id)))) return false;
    await this.redis.hset(this.keys.apiKey(id), 'revoked', '1');
    return true;
  }

  /** A new webhook secret for the key; deliveries from now on are signed with it. */
  async rotateWebhookSecret(id: string): Promise<string | null> {
    if (!(await this.redis.exists(this.keys.apiKey(id)))) return null;
    const secret = generateWebhookSecret();
    await this.redis.hset(this.keys.apiKey(id), 'webhook_secret', secret);
    return secret;
  }
}
