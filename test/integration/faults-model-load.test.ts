// A model file that fails to load: the worker refuses to start, exits non-zero and names the
// file, whether the file is corrupt under a matching checksum or cut short.
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { loopbackEnv, removeQueues } from './api-harness.js';
import { type Service, spawnService } from './faults-harness.js';

describe('fault: a model file that fails to load', () => {
  let dir: string;
  let env: Record<string, string>;
  const services: Service[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dalle-packs-'));
    // No API: the port only has to be valid. Info logs carry the worker's fatal line.
    env = { ...loopbackEnv(3000, join(dir, 'images')), CPU_THREADS: '1', LOG_LEVEL: 'info' };
  });
  after(async () => {
    for (const service of services) await service.stop();
    await removeQueues(loadConfig(env));
    await rm(dir, { recursive: true, force: true });
  });

  async function copyPack(name: string): Promise<string> {
    const models = join(dir, name);
    await cp('packs/demo-shapes', join(models, 'demo-shapes'), { recursive: true });
    return models;
  }

  async function startWorker(models: string): Promise<{ code: number | null; output: string }> {
    const service = spawnService('src/worker/main.ts', { ...env, MODELS_DIR: models });
    services.push(service);
    const code = await Promise.race([
      service.exited,
      new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 60_000).unref()),
    ]);
    assert.notEqual(code, 'running', `the worker is still running:\n${service.output().slice(-2000)}`);
    return { code: code as number | null, output: service.output() };
  }

  test('an ONNX file that is not a model (its checksum updated): exit 1 naming the file', async () => {
    const models = await copyPack('corrupt');
    const file = join(models, 'demo-shapes', 'decoder.onnx');
    const garbage = Buffer.from('this is not an onnx model '.repeat(100));
    await writeFile(file, garbage);
    const manifestPath = join(models, 'demo-shapes', 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    manifest.files['decoder.onnx'] = {
      sha256: createHash('sha256').update(garbage).digest('hex'),
      bytes: garbage.length,
    };
    await writeFile(manifestPath, JSON.stringify(manifest, null, 2));

    const { code, output } = await startWorker(models);
    assert.equal(code, 1, output.slice(-2000));
    const fatal = output
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .find((entry) => entry.level === 60);
    assert.ok(fatal, `no fatal log line:\n${output.slice(-2000)}`);
    // The line itself says what failed, for a reader of the plain log.
    assert.match(fatal.msg, /^start failed: .*decoder\.onnx/);
    assert.match(fatal.err.message, /decoder\.onnx/);
    assert.doesNotMatch(output, /worker ready/);
  });

  test('a truncated ONNX file: exit 1 naming the file and the size mismatch', async () => {
    const models = await copyPack('truncated');
    await truncate(join(models, 'demo-shapes', 'clip-text.onnx'), 1000);
    const { code, output } = await startWorker(models);
    assert.equal(code, 1, output.slice(-2000));
    const fatal = output
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
      .find((entry) => entry.level === 60);
    assert.ok(fatal, `no fatal log line:\n${output.slice(-2000)}`);
    assert.match(fatal.err.message, /clip-text\.onnx has 1000 bytes/);
    assert.doesNotMatch(output, /worker ready/);
  });
});
