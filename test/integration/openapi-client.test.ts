// The committed OpenAPI document drives a generated client: openapi-typescript writes the types,
// tsc compiles a small openapi-fetch client against them (a wrong path, field or type fails
// here), and the compiled client runs against the live service.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import openapiTS, { astToString } from 'openapi-typescript';
import sharp from 'sharp';
import { type Harness, closeSharedEngine, startHarness } from './api-harness.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');

const CLIENT = `
import createClient from 'openapi-fetch';
import type { paths } from './schema.js';

export async function run(baseUrl: string) {
  const client = createClient<paths>({ baseUrl });
  const created = await client.POST('/generations', {
    body: { prompt: 'a red circle on a blue background', candidates: 2, n: 1, seed: 5 },
  });
  if (!created.data) throw new Error(\`create failed: \${JSON.stringify(created.error)}\`);
  const id: string = created.data.id;
  for (let polls = 0; polls < 600; polls++) {
    const { data, error } = await client.GET('/generations/{id}', { params: { path: { id } } });
    if (!data) throw new Error(\`get failed: \${JSON.stringify(error)}\`);
    if (data.status === 'succeeded' || data.status === 'failed' || data.status === 'canceled') {
      const first = data.images[0];
      const viaUrl = first ? new Uint8Array(await (await fetch(first.url)).arrayBuffer()) : null;
      const viaRoute = first ? await fileRoute(first.url) : null;
      return { id, status: data.status, listed: await listed(id), rank: first?.rank, viaUrl, viaRoute };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the generation did not finish');

  // The same bytes through the documented file operation, its key a path parameter.
  async function fileRoute(url: string): Promise<Uint8Array | null> {
    const parsed = new URL(url);
    const key = decodeURIComponent(parsed.pathname.slice('/files/'.length));
    const query = { expires: parsed.searchParams.get('expires') ?? '', signature: parsed.searchParams.get('signature') ?? '' };
    const { data } = await client.GET('/files/{key}', { params: { path: { key }, query }, parseAs: 'arrayBuffer' });
    return data ? new Uint8Array(data) : null;
  }

  async function listed(wanted: string): Promise<boolean> {
    const { data } = await client.GET('/generations', { params: { query: { limit: 10 } } });
    return data?.data.some((generation) => generation.id === wanted) ?? false;
  }
}
`;

async function buildClient(dir: string): Promise<{ run: (baseUrl: string) => Promise<any> }> {
  const document = JSON.parse(await readFile(join(ROOT, 'openapi/openapi.json'), 'utf8'));
  await writeFile(join(dir, 'schema.ts'), astToString(await openapiTS(document)));
  await writeFile(join(dir, 'client.ts'), CLIENT);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  const args = ['--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022'];
  await promisify(execFile)(process.execPath, [TSC, ...args, '--outDir', join(dir, 'out'), join(dir, 'client.ts')], {
    cwd: dir,
  }).catch((error: { stdout?: string }) => {
    throw new Error(`tsc failed:\n${error.stdout ?? String(error)}`);
  });
  return import(pathToFileURL(join(dir, 'out', 'client.js')).href);
}

describe('a client generated from the OpenAPI document', () => {
  let h: Harness;
  let dir: string;
  before(async () => {
    // Inside the repository (its tmp/ is ignored), so the client resolves openapi-fetch.
    await mkdir(join(ROOT, 'tmp'), { recursive: true });
    dir = await mkdtemp(join(ROOT, 'tmp', 'typed-client-'));
    h = await startHarness();
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
    await rm(dir, { recursive: true, force: true });
  });

  test('compiles against the generated types and creates, polls and fetches a generation', async () => {
    const client = await buildClient(dir);
    const outcome = await client.run(h.baseUrl);
    assert.equal(outcome.status, 'succeeded');
    assert.equal(outcome.rank, 1);
    assert.equal(outcome.listed, true);
    const { format, width } = await sharp(Buffer.from(outcome.viaUrl)).metadata();
    assert.deepEqual([format, width], ['png', 64]);
    assert.deepEqual(outcome.viaRoute, outcome.viaUrl, 'GET /files/{key} serves the same bytes');
  });
});
