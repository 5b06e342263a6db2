// The engine from compiled JavaScript: the inference thread must start from engine-thread.js
// without tsx, as in a production build (dist/). The sources are transpiled with esbuild into
// a temporary tree that mirrors the repository layout (packs/ and node_modules/ linked).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../../', import.meta.url));

test('the compiled engine runs its inference thread from plain .js', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'models-dist-'));
  try {
    // src/models and the one layer it may import, src/lib.
    const sources = [];
    for (const part of ['src/models', 'src/lib']) {
      const files = (await readdir(join(root, part))).filter((f) => f.endsWith('.ts'));
      sources.push(...files.map((f) => join(root, part, f)));
    }
    await build({
      entryPoints: sources,
      outbase: join(root, 'src'),
      outdir: join(dir, 'dist'),
      format: 'esm',
      platform: 'node',
      target: 'node20',
      logLevel: 'silent',
    });
    await symlink(join(root, 'node_modules'), join(dir, 'node_modules'));
    await symlink(join(root, 'packs'), join(dir, 'packs'));
    await symlink(join(root, 'package.json'), join(dir, 'package.json'));
    const script = `
      const { createEngine } = await import('./dist/models/index.js');
      const quiet = { debug() {}, info() {}, warn() {}, error() {} };
      const engine = await createEngine({ modelsDir: 'packs', logger: quiet, eager: false });
      const [embedding] = await engine.embedTexts(['a red circle'], 'demo-shapes');
      await engine.close();
      console.log(JSON.stringify({ length: embedding.length, norm: Math.hypot(...embedding) }));
    `;
    await writeFile(join(dir, 'check.mjs'), script);
    const { stdout } = await promisify(execFile)(process.execPath, ['check.mjs'], { cwd: dir });
    const result = JSON.parse(stdout) as { length: number; norm: number };
    assert.equal(result.length, 64);
    assert.ok(Math.abs(result.norm - 1) < 1e-5);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
