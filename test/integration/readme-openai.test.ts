// The README's "Use it from the OpenAI SDK" snippet, as written, against the live service.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Harness, closeSharedEngine, startHarness } from './api-harness.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function readmeSnippet(): Promise<string> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split('\n## Use it from the OpenAI SDK\n')[1]?.split('\n## ')[0];
  const snippet = section && /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(snippet, 'the README has the section and its js snippet');
  return snippet;
}

describe('README: Use it from the OpenAI SDK', () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    // Inside the repository (its tmp/ is ignored), so the snippet resolves the openai package.
    await mkdir(join(ROOT, 'tmp'), { recursive: true });
    dir = await mkdtemp(join(ROOT, 'tmp', 'readme-'));
    h = await startHarness();
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
    await rm(dir, { recursive: true, force: true });
  });

  test('the snippet runs and prints a generated image and the embeddings', async () => {
    const snippet = await readmeSnippet();
    assert.ok(snippet.includes("'http://localhost:3000/v1'"));
    const file = join(dir, 'snippet.mjs');
    await writeFile(file, snippet.replace("'http://localhost:3000/v1'", `'${h.baseUrl}/v1'`));
    const env = { ...process.env };
    delete env.DALLE_SERVE_KEY;
    const { stdout } = await promisify(execFile)(process.execPath, [file], { cwd: dir, env });
    const [imageLine, embeddingLine] = stdout.trim().split('\n');
    assert.match(imageLine, /^a red circle on a blue background [1-9][0-9]* bytes of PNG$/);
    assert.match(embeddingLine, /^2 embeddings of [1-9][0-9]* dimensions$/);
  });

  test('the snippet compiles as strict TypeScript against the SDK', async () => {
    const file = join(dir, 'snippet.mts');
    await writeFile(file, await readmeSnippet());
    const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
    // The strictest settings a user may have: an index into an array may be undefined.
    const flags = ['--noEmit', '--strict', '--noUncheckedIndexedAccess', '--skipLibCheck'];
    const module = ['--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--types', 'node'];
    await promisify(execFile)(tsc, [...flags, ...module, file], { cwd: dir }).catch((error: { stdout?: string }) => {
      assert.fail(`tsc refused the README's snippet:\n${error.stdout ?? String(error)}`);
    });
  });
});
