// LOG_FORMAT: JSON lines for machines, pretty lines for a person at a terminal, and `auto`
// choosing by whether stdout is one.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';
import { logOutput } from '../../src/logger.js';

/** What createLogger writes to a stdout that is a pipe (not a terminal) for `format`. */
function written(format: string): string {
  const script = `const { createLogger } = await import('./src/logger.ts');
createLogger('info', 'probe', process.argv[1]).info({ answer: 42 }, 'hello');`;
  return execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, format], {
    cwd: new URL('../..', import.meta.url),
    env: { ...process.env, NO_COLOR: '1' },
    encoding: 'utf8',
  });
}

describe('log format', () => {
  test('auto is pretty on a terminal and JSON anywhere else; json and pretty are what they say', () => {
    assert.equal(logOutput('auto', true), 'pretty');
    assert.equal(logOutput('auto', false), 'json');
    assert.equal(logOutput('json', true), 'json');
    assert.equal(logOutput('json', false), 'json');
    assert.equal(logOutput('pretty', false), 'pretty');
  });

  test('LOG_FORMAT defaults to auto and takes only auto, json or pretty', () => {
    assert.equal(loadConfig({}).logFormat, 'auto');
    assert.equal(loadConfig({ LOG_FORMAT: 'json' }).logFormat, 'json');
    assert.throws(
      () => loadConfig({ LOG_FORMAT: 'text' }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.problems.includes('LOG_FORMAT="text": expected one of auto, json, pretty'),
    );
  });

  test('into a pipe, auto and json write JSON lines; pretty writes the message for reading', () => {
    for (const format of ['auto', 'json']) {
      const line = JSON.parse(written(format)) as Record<string, unknown>;
      assert.equal(line.msg, 'hello');
      assert.equal(line.level, 30);
      assert.equal(line.answer, 42);
    }
    const pretty = written('pretty');
    assert.throws(() => JSON.parse(pretty));
    assert.match(pretty, /INFO \(probe\): hello\n\s+answer: 42/);
  });
});
