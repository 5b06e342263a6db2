// loadConfig: defaults, parsing, and one clear message per bad variable.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('loadConfig', () => {
  test('an empty environment gives the embedded defaults', () => {
    const config = loadConfig({});
    assert.equal(config.port, 3000);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.publicBaseUrl, 'http://localhost:3000');
    assert.deepEqual(config.redis, { kind: 'single', url: 'redis://127.0.0.1:6379' });
    assert.equal(config.redisUrlIsDefault, true);
    assert.equal(config.modelsDir, './packs');
    assert.equal(config.device, 'cpu');
    assert.equal(config.storage.kind, 'fs');
    assert.equal(config.webhookSecret, undefined);
    assert.deepEqual(config.workerQueues, ['generate', 'classify', 'webhooks']);
    assert.equal(config.classifyBatchMax, 32);
    assert.equal(config.idempotencyTtlSeconds, 86_400);
    assert.equal(config.cpuSpinWait, false, "onnxruntime's threads sleep between runs");
  });

  test('values are parsed and the result is frozen all the way down', () => {
    const config = loadConfig({
      PORT: '8080',
      PUBLIC_BASE_URL: 'https://images.example.com/',
      REDIS_URL: 'redis://redis:6379/2',
      DEVICE: 'cuda:1',
      STORAGE: 's3',
      S3_BUCKET: 'images',
      S3_ENDPOINT: 'http://minio:9000',
      S3_FORCE_PATH_STYLE: 'true',
      S3_ACCESS_KEY_ID: 'key',
      S3_SECRET_ACCESS_KEY: 'secret',
      S3_REQUEST_TIMEOUT_MS: '10000',
      WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      WORKER_QUEUES: 'classify, webhooks',
      CLASSIFY_BATCH_WAIT_MS: '25',
      CPU_SPIN_WAIT: 'true',
    });
    assert.equal(config.port, 8080);
    assert.equal(config.publicBaseUrl, 'https://images.example.com', 'no trailing slash');
    assert.equal(config.redisUrlIsDefault, false);
    assert.equal(config.device, 'cuda:1');
    assert.deepEqual(config.storage, {
      kind: 's3',
      endpoint: 'http://minio:9000',
      region: 'us-east-1',
      bucket: 'images',
      forcePathStyle: true,
      accessKeyId: 'key',
      secretAccessKey: 'secret',
      publicBaseUrl: undefined,
      presignExpiresSeconds: 3600,
      requestTimeoutMs: 10_000,
      connectTimeoutMs: 5_000,
    });
    assert.deepEqual(config.workerQueues, ['classify', 'webhooks']);
    assert.equal(config.classifyBatchWaitMs, 25);
    assert.equal(config.cpuSpinWait, true);
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.storage) && Object.isFrozen(config.workerQueues));
    assert.throws(() => {
      (config as { port: number }).port = 1;
    }, TypeError);
  });

  test('every bad variable is named, all in one error', () => {
    const problems = problemsOf({
      PORT: 'eighty',
      REDIS_URL: 'http://redis',
      DEVICE: 'tpu',
      STORAGE: 'ftp',
      WEBHOOK_SECRET: 'not-a-secret',
      WORKER_QUEUES: 'generate,render',
      CLASSIFY_BATCH_MAX: '0',
      S3_FORCE_PATH_STYLE: 'maybe',
    });
    for (const name of [
      'PORT',
      'REDIS_URL',
      'DEVICE',
      'STORAGE',
      'WEBHOOK_SECRET',
      'WORKER_QUEUES',
      'CLASSIFY_BATCH_MAX',
    ]) {
      assert.ok(
        problems.some((problem) => problem.startsWith(name)),
        `${name} is named in ${JSON.stringify(problems)}`,
      );
    }
  });

  test('S3 storage needs a bucket and both keys or neither', () => {
    const problems = problemsOf({ STORAGE: 's3', S3_ACCESS_KEY_ID: 'only-one' });
    assert.ok(problems.some((problem) => problem.includes('S3_BUCKET')));
    assert.ok(problems.some((problem) => problem.includes('S3_SECRET_ACCESS_KEY')));
  });

  test('Redis is one server, a Sentinel set or a Cluster; replicas confirm writes on the latter two', () => {
    assert.deepEqual(loadConfig({ REDIS_URL: 'redis://redis:6379' }).redis, {
      kind: 'single',
      url: 'redis://redis:6379',
    });
    assert.equal(loadConfig({}).redisWaitReplicas, 0);
    const sentinel = loadConfig({
      REDIS_SENTINELS: 'sentinel-0:26379, [::1]:26380',
      REDIS_SENTINEL_MASTER: 'main',
      REDIS_PASSWORD: 'pw',
    });
    assert.deepEqual(sentinel.redis, {
      kind: 'sentinel',
      sentinels: [
        { host: 'sentinel-0', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      master: 'main',
      password: 'pw',
    });
    assert.equal(sentinel.redisWaitReplicas, 1);
    assert.equal(sentinel.redisUrlIsDefault, false);
    const cluster = loadConfig({ REDIS_CLUSTER_NODES: 'redis-0:6379,redis-1:6379', REDIS_WAIT_REPLICAS: '0' });
    assert.deepEqual(cluster.redis, {
      kind: 'cluster',
      nodes: [
        { host: 'redis-0', port: 6379 },
        { host: 'redis-1', port: 6379 },
      ],
    });
    assert.equal(cluster.redisWaitReplicas, 0);
  });

  test('Redis settings that contradict each other, or would cross Cluster slots, are refused by name', () => {
    const named = (env: Record<string, string>, ...names: string[]) => {
      const problems = problemsOf(env).join('\n');
      for (const name of names) assert.match(problems, new RegExp(name), `${JSON.stringify(env)}: ${problems}`);
    };
    named({ REDIS_SENTINELS: 'a:1' }, 'REDIS_SENTINEL_MASTER is required');
    named({ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_MASTER: 'm', REDIS_CLUSTER_NODES: 'b:2' }, 'REDIS_CLUSTER_NODES');
    named({ REDIS_URL: 'redis://x:6379', REDIS_CLUSTER_NODES: 'b:2' }, 'REDIS_URL and REDIS_CLUSTER_NODES');
    named({ REDIS_CLUSTER_NODES: 'b:2,c,d:70000' }, '"c" is not host:port', '"d:70000" is not host:port');
    named({ REDIS_SENTINEL_MASTER: 'm' }, 'REDIS_SENTINEL_MASTER is set but neither');
    named({ QUEUE_PREFIX: '{dalle}' }, 'QUEUE_PREFIX="\\{dalle\\}": no braces');
  });

  test('numbers are integers within range, nothing else', () => {
    for (const value of ['1.5', '-1', '1e3', '70000', ' ']) {
      if (value.trim() === '') {
        assert.equal(loadConfig({ PORT: value }).port, 3000, 'blank means default');
      } else {
        assert.ok(problemsOf({ PORT: value })[0].startsWith('PORT='), value);
      }
    }
  });

  test('a short file URL secret is refused', () => {
    assert.ok(problemsOf({ FILE_URL_SECRET: 'short' })[0].startsWith('FILE_URL_SECRET'));
  });
});

// API_KEYS and the default limits: keys are kept only as SHA-256 hashes, malformed lists and
// bad limits are named at start, and 0 or nothing means unlimited.
describe('access settings', () => {
  test('API_KEYS are hashed on load and the keys themselves are not kept', () => {
    const config = loadConfig({ API_KEYS: 'alice:alice-key-0123456789, bob:bob-key-0123456789ab' });
    assert.deepEqual(config.apiKeys, [
      { name: 'alice', hash: createHash('sha256').update('alice-key-0123456789').digest('hex') },
      { name: 'bob', hash: createHash('sha256').update('bob-key-0123456789ab').digest('hex') },
    ]);
    assert.ok(!JSON.stringify(config).includes('alice-key-0123456789'));
    assert.deepEqual(loadConfig({}).apiKeys, []);
  });

  test('malformed API_KEYS are refused at start', () => {
    for (const value of [
      'just-a-key-0123456789',
      'alice:short',
      'bad name:key-0123456789abcdef',
      'a:key-0123456789abcdef,a:key-0123456789abcdeg',
    ]) {
      assert.ok(
        problemsOf({ API_KEYS: value }).some((problem) => problem.startsWith('API_KEYS')),
        value,
      );
    }
  });

  test('limits default to unlimited; 0 is unlimited; negatives are refused', () => {
    assert.deepEqual(
      { ...loadConfig({}).limits },
      { requests_per_minute: undefined, concurrent_generations: undefined, candidates_per_day: undefined },
    );
    const config = loadConfig({
      RATE_LIMIT_PER_MINUTE: '60',
      MAX_CONCURRENT_GENERATIONS: '0',
      CANDIDATES_PER_DAY: '5000',
    });
    assert.equal(config.limits.requests_per_minute, 60);
    assert.equal(config.limits.concurrent_generations, undefined);
    assert.equal(config.limits.candidates_per_day, 5000);
    assert.match(problemsOf({ RATE_LIMIT_PER_MINUTE: '-1' }).join(), /RATE_LIMIT_PER_MINUTE/);
  });
});
