// The settings table (src/config/settings.ts) is the one place a variable and its default are
// written: .env.example and the README's tables are generated from it, and loadConfig reads
// every variable through it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { renderEnvExample, withReadmeTables } from '../../scripts/config-docs.js';
import { loadConfig } from '../../src/config.js';
import { SETTING_GROUPS, setting } from '../../src/config/settings.js';
import { QUEUE_NAMES } from '../../src/contracts/queues.js';

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

test('.env.example and the README tables are what `npm run config-docs` writes', () => {
  assert.equal(read('.env.example'), renderEnvExample(), 'run `npm run config-docs`');
  const readme = read('README.md');
  assert.equal(readme, withReadmeTables(readme), 'run `npm run config-docs`');
});

test('each variable is defined once, in a group', () => {
  const names = SETTING_GROUPS.flatMap((group) => group.settings.map((s) => s.name));
  assert.deepEqual(
    names.filter((name, i) => names.indexOf(name) !== i),
    [],
  );
  for (const group of SETTING_GROUPS) assert.ok(group.settings.length > 0, group.title);
});

test('loadConfig reads only variables of the table', () => {
  const read: string[] = [];
  const env = new Proxy({} as Record<string, string | undefined>, {
    get(_target, name) {
      if (typeof name === 'string') read.push(name);
      return undefined;
    },
  });
  loadConfig(env);
  for (const name of read) assert.doesNotThrow(() => setting(name), name);
  assert.throws(() => setting('NOT_A_SETTING'), /not in the settings table/);
});

test('the defaults are the configuration of an empty environment', () => {
  const config = loadConfig({});
  assert.equal(config.port, Number(setting('PORT').default));
  assert.equal(config.imageMaxBytes, Number(setting('IMAGE_MAX_BYTES').default));
  assert.deepEqual(config.redis, { kind: 'single', url: setting('REDIS_URL').default });
  assert.equal(config.redisUrlIsDefault, true);
  assert.deepEqual(config.workerQueues, setting('WORKER_QUEUES').default?.split(','));
  assert.deepEqual(config.workerQueues, [...QUEUE_NAMES]);
});
