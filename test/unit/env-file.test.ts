// .env for `npm start`, `npm run api` and `npm run worker`: read when present, the environment
// winning over it, and said in the log.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { loadEnvFile, reportEnvFile } from '../../src/process.js';

const dir = mkdtempSync(join(tmpdir(), 'dalle-env-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function envFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('.env', () => {
  test("its variables fill in what the environment leaves unset; the environment's win, even empty", () => {
    const path = envFile(
      'settings.env',
      [
        '# a comment',
        'PORT=4000',
        'LOG_LEVEL=debug',
        'API_KEYS="local:secret"',
        'export QUEUE_PREFIX=mine',
        'HOST=0.0.0.0',
      ].join('\n'),
    );
    const env: Record<string, string | undefined> = { LOG_LEVEL: 'warn', HOST: '' };
    const outcome = loadEnvFile(path, env);
    assert.deepEqual(env, {
      LOG_LEVEL: 'warn',
      HOST: '',
      PORT: '4000',
      API_KEYS: 'local:secret',
      QUEUE_PREFIX: 'mine',
    });
    assert.deepEqual(outcome, {
      status: 'read',
      path,
      applied: ['API_KEYS', 'PORT', 'QUEUE_PREFIX'],
      kept: ['HOST', 'LOG_LEVEL'],
    });
  });

  test('no file: nothing changes, and nothing is said', () => {
    const env = { PORT: '3000' };
    const outcome = loadEnvFile(join(dir, 'absent.env'), env);
    assert.deepEqual(outcome, { status: 'absent', path: join(dir, 'absent.env') });
    assert.deepEqual(env, { PORT: '3000' });
    const lines: string[] = [];
    reportEnvFile(pino({ level: 'debug' }, { write: (line: string) => lines.push(line) }), outcome);
    assert.deepEqual(lines, []);
  });

  test('a file read is said at start with the names it set, never the values', () => {
    const path = envFile('named.env', 'API_KEYS=local:s3cret\nPORT=4000\n');
    const lines: string[] = [];
    reportEnvFile(pino({ level: 'info' }, { write: (line: string) => lines.push(line) }), loadEnvFile(path, {}));
    assert.equal(lines.length, 1);
    const line = JSON.parse(lines[0]) as Record<string, unknown>;
    assert.equal(line.msg, `read settings from ${path}`);
    assert.equal(line.level, 30);
    assert.deepEqual(line.variables, ['API_KEYS', 'PORT']);
    assert.doesNotMatch(lines[0], /s3cret/);
  });
});
