// API_KEYS and the default limits: keys are kept only as SHA-256 hashes, malformed lists and
// bad limits are named at start, and 0 or nothing means unlimited.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
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
  for (const value of ['just-a-key-0123456789', 'alice:short', 'bad name:key-0123456789abcdef', 'a:key-0123456789abcdef,a:key-0123456789abcdeg']) {
    assert.ok(problemsOf({ API_KEYS: value }).some((problem) => problem.startsWith('API_KEYS')), value);
  }
});

test('limits default to unlimited; 0 is unlimited; negatives are refused', () => {
  assert.deepEqual({ ...loadConfig({}).limits }, { requests_per_minute: undefined, concurrent_generations: undefined, candidates_per_day: undefined });
  const config = loadConfig({ RATE_LIMIT_PER_MINUTE: '60', MAX_CONCURRENT_GENERATIONS: '0', CANDIDATES_PER_DAY: '5000' });
  assert.equal(config.limits.requests_per_minute, 60);
  assert.equal(config.limits.concurrent_generations, undefined);
  assert.equal(config.limits.candidates_per_day, 5000);
  assert.match(problemsOf({ RATE_LIMIT_PER_MINUTE: '-1' }).join(), /RATE_LIMIT_PER_MINUTE/);
});
