// Pack checks: a malformed manifest names the field, a changed file names the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile, appendFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listPacks, loadPack, ModelError, parseDevice, validateManifest } from '../../src/models/index.js';

const packsDir = fileURLToPath(new URL('../../packs/', import.meta.url));
const demoDir = join(packsDir, 'demo-shapes');

async function manifestOf(dir: string): Promise<Record<string, any>> {
  return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
}

function rejectsWith(fn: () => unknown, code: string, pattern: RegExp) {
  return assert.rejects(
    async () => fn(),
    (error: unknown) => {
      assert.ok(error instanceof ModelError, String(error));
      assert.equal(error.code, code);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

async function withPackCopy(body: (dir: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'pack-'));
  const dir = join(root, 'demo-shapes');
  try {
    await cp(demoDir, dir, { recursive: true });
    await body(dir);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

test('the committed packs load and list in name order', async () => {
  const packs = await listPacks(packsDir);
  assert.deepEqual(
    packs.map((p) => p.manifest.name),
    ['demo-shapes', 'micro-dalle1'],
  );
  const micro = packs[1].manifest;
  assert.equal(micro.geometry?.text_length, 256);
  assert.deepEqual(micro.geometry?.image_grid, [32, 32]);
});

test('a malformed manifest names the field', async () => {
  const good = await manifestOf(demoDir);
  const cases: [(m: any) => void, RegExp][] = [
    [(m) => (m.geometry.text_length = 0), /geometry\.text_length must be >= 1/],
    [(m) => delete m.clip.logit_scale, /clip\.logit_scale is required/],
    [(m) => (m.clip.preprocess.resize = 'stretch'), /clip\.preprocess\.resize must be equal to one of/],
    [(m) => (m.generator.colour = 'red'), /generator\.colour is not allowed/],
    [(m) => (m.clip.templates = ['no placeholder']), /clip\.templates\.0 must match pattern/],
    [(m) => (m.geometry.image_token_offset = 3), /geometry\.image_token_offset must equal geometry\.text_vocab_size/],
    [(m) => (m.decoder.graph = 'other.onnx'), /decoder\.graph names "other\.onnx", which is missing from files/],
    [(m) => delete m.decoder, /decoder is required with geometry \(geometry, generator and decoder come together\)/],
    [(m) => delete m.clip, /: clip is required/],
  ];
  for (const [change, pattern] of cases) {
    const bad = structuredClone(good);
    change(bad);
    await rejectsWith(() => validateManifest(bad), 'pack_invalid_manifest', pattern);
  }
});

test('schemas 1 to 5 load (5 adds kv_step, 4 the encoder and forced tokens, 3 license, 2 per-row settings); others are refused', async () => {
  const current = await manifestOf(demoDir);
  assert.equal(validateManifest(current).schema_version, 5);
  await rejectsWith(
    () => validateManifest({ ...current, schema_version: 4 }),
    'pack_invalid_manifest',
    /generator\.graphs\.kv_step needs schema_version 5 or later/,
  );
  const { kv_step, ...graphs } = current.generator.graphs;
  assert.equal(kv_step, 'generator-kv-step.onnx');
  const withoutKv: Record<string, any> = { ...current, generator: { ...current.generator, graphs } };
  assert.equal(validateManifest({ ...withoutKv, schema_version: 4 }).schema_version, 4);
  const { encoder, ...textOnly } = withoutKv;
  assert.deepEqual(encoder, { graph: 'encoder.onnx' });
  assert.equal(validateManifest({ ...textOnly, schema_version: 3 }).schema_version, 3);
  assert.equal(validateManifest({ ...textOnly, schema_version: 2 }).schema_version, 2);
  assert.equal(validateManifest({ ...textOnly, schema_version: 1 }).schema_version, 1);
  await rejectsWith(
    () => validateManifest({ ...withoutKv, schema_version: 3 }),
    'pack_invalid_manifest',
    /encoder needs schema_version 4 or later/,
  );
  const clipOnly = { ...current };
  delete clipOnly.geometry;
  delete clipOnly.generator;
  delete clipOnly.decoder;
  await rejectsWith(
    () => validateManifest(clipOnly),
    'pack_invalid_manifest',
    /geometry is required with encoder \(an encoder completes the generations of a pack that generates\)/,
  );
  assert.equal(validateManifest({ ...current, license: 'CC-BY-NC-SA-4.0' }).schema_version, 5);
  await rejectsWith(
    () => validateManifest({ ...current, schema_version: 6 }),
    'pack_invalid_manifest',
    /schema_version must be equal to one of/,
  );
});

test('vocabulary and examples are optional in every schema version, and checked when present', async () => {
  const current = await manifestOf(demoDir);
  assert.ok(current.vocabulary.includes('circle'), 'the demo pack lists the words it was trained on');
  assert.ok(current.examples.length > 0);
  delete current.generator.graphs.kv_step;
  for (const schema_version of [1, 2, 3, 4]) {
    if (schema_version < 4) delete current.encoder;
    const listed = validateManifest({ ...current, schema_version });
    assert.deepEqual(listed.vocabulary, current.vocabulary);
    assert.deepEqual(listed.examples, current.examples);
    const bare: Record<string, any> = { ...current, schema_version };
    delete bare.vocabulary;
    delete bare.examples;
    const m = validateManifest(bare);
    assert.equal(m.vocabulary, undefined);
    assert.equal(m.examples, undefined);
  }
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ vocabulary: ['red', 'Red'] }, /vocabulary\.1 must match pattern/],
    [{ vocabulary: ['two words'] }, /vocabulary\.0 must match pattern/],
    [{ vocabulary: ['red', 'red'] }, /vocabulary must NOT have duplicate items/],
    [{ vocabulary: 'red circle' }, /vocabulary must be array/],
    [{ examples: [''] }, /examples\.0 must NOT have fewer than 1 characters/],
  ];
  for (const [change, pattern] of cases) {
    await rejectsWith(() => validateManifest({ ...current, ...change }), 'pack_invalid_manifest', pattern);
  }
});

test('without geometry, generator and decoder (and encoder) a manifest is a CLIP-only pack', async () => {
  const clipOnly = await manifestOf(demoDir);
  delete clipOnly.geometry;
  delete clipOnly.generator;
  delete clipOnly.decoder;
  delete clipOnly.encoder;
  const m = validateManifest(clipOnly);
  assert.equal(m.generator, undefined);
  assert.deepEqual(Object.keys(m.clip.graphs), ['image', 'text']);
});

test('a file whose sha256 differs is refused with its name', async () => {
  await withPackCopy(async (dir) => {
    const path = join(dir, 'decoder.onnx');
    const bytes = await readFile(path);
    bytes[bytes.length - 1] ^= 0xff; // same size, different content
    await writeFile(path, bytes);
    await rejectsWith(
      () => loadPack(dir),
      'pack_checksum_mismatch',
      /file decoder\.onnx has sha256 [0-9a-f]{64}, the manifest says/,
    );
  });
});

test('a file of the wrong size or missing is refused with its name', async () => {
  await withPackCopy(async (dir) => {
    await appendFile(join(dir, 'tokenizer.json'), ' ');
    await rejectsWith(() => loadPack(dir), 'pack_checksum_mismatch', /file tokenizer\.json has \d+ bytes/);
  });
  await withPackCopy(async (dir) => {
    await unlink(join(dir, 'clip-text.onnx'));
    await rejectsWith(() => loadPack(dir), 'pack_file_missing', /file clip-text\.onnx is missing/);
  });
});

test('a manifest that is not JSON, and a models folder that does not exist, are named', async () => {
  await withPackCopy(async (dir) => {
    await writeFile(join(dir, 'manifest.json'), '{ nope');
    await rejectsWith(() => loadPack(dir), 'pack_invalid_manifest', /manifest\.json: not JSON/);
  });
  await rejectsWith(() => listPacks('/nonexistent/models'), 'pack_file_missing', /\/nonexistent\/models/);
});

test('device names map to providers; an unknown one lists the valid names', () => {
  assert.deepEqual(parseDevice(undefined), { kind: 'cpu' });
  assert.deepEqual(parseDevice('cpu'), { kind: 'cpu' });
  assert.deepEqual(parseDevice('cuda'), { kind: 'cuda', deviceId: 0 });
  assert.deepEqual(parseDevice('cuda:3'), { kind: 'cuda', deviceId: 3 });
  for (const bad of ['gpu', 'cuda:', 'cuda:x', 'CUDA']) {
    assert.throws(
      () => parseDevice(bad),
      (e: unknown) =>
        e instanceof ModelError && e.code === 'invalid_device' && /valid names are cpu, cuda, cuda:N/.test(e.message),
    );
  }
});
