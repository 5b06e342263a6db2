// The two CLIs as people run them: files written by `generate`, ranked labels from `classify`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';

const root = fileURLToPath(new URL('../../', import.meta.url));
const run = (script: string, args: string[]) =>
  promisify(execFile)(process.execPath, ['--import', 'tsx', `src/cli/${script}`, ...args], { cwd: root });

test('generate writes the kept images and a contact sheet, and prints a summary', async () => {
  const out = await mkdtemp(join(tmpdir(), 'generate-'));
  try {
    const { stdout } = await run('generate.ts', [
      'a red circle above a blue square',
      '--out',
      out,
      '--candidates',
      '3',
      '--n',
      '2',
      '--seed',
      '9',
      '--model',
      'demo-shapes',
    ]);
    assert.match(stdout, /model demo-shapes, seed 9, sampler kv, prompt tokens \d+/);
    assert.match(stdout, /#1 {2}score -?\d+\.\d{3} {2}candidate \d/);
    const files = (await readdir(out)).sort();
    assert.equal(files.length, 3);
    assert.equal(files[0], 'contact-sheet.png');
    assert.match(files[1], /^rank-01-candidate-[0-2]\.png$/);
    assert.match(files[2], /^rank-02-candidate-[0-2]\.png$/);
    const image = await sharp(join(out, files[1])).metadata();
    assert.deepEqual([image.width, image.height], [64, 64]);
    const sheet = await sharp(join(out, 'contact-sheet.png')).metadata();
    assert.ok(sheet.width! > 2 * 128 && sheet.height! > 128, `${sheet.width}×${sheet.height}`);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('classify prints each image with its labels, best first', async () => {
  const scene = 'test/fixtures/scenes/train-00.png';
  const { stdout } = await run('classify.ts', [
    scene,
    '--labels',
    'green square, red circle,blue cross',
    '--model',
    'demo-shapes',
  ]);
  const lines = stdout.trim().split('\n');
  assert.equal(lines[0], scene);
  const scores = lines.slice(1).map((line) => {
    const match = /^\s+(\d+\.\d)% {2}(green square|red circle|blue cross)$/.exec(line);
    assert.ok(match, line);
    return Number(match[1]);
  });
  assert.equal(scores.length, 3);
  assert.deepEqual(
    scores,
    [...scores].sort((a, b) => b - a),
  );
});

test('classify without labels prints its usage and fails', async () => {
  await assert.rejects(
    run('classify.ts', ['image.png']),
    (e: { code: number; stderr: string }) => e.code === 1 && /usage: npm run classify/.test(e.stderr),
  );
});
