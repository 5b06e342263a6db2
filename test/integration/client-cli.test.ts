// The client CLI as people run it: the bin spawned as a child process against a real service
// (API and worker in this process, real Redis, the demo pack on the CPU).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { Generation, GenerationList } from '../../src/contracts/schemas.js';
import { type Harness, closeSharedEngine, json, startHarness, terminal, waitFor } from './api-harness.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCENE = 'test/fixtures/scenes/train-00.png';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `dalle-serve …` through the package's bin, its environment naming no service or key. */
function start(args: string[], env: Record<string, string> = {}): ChildProcess {
  const { DALLE_SERVE_URL: _url, DALLE_SERVE_API_KEY: _key, ...inherited } = process.env;
  return spawn(process.execPath, ['bin/dalle-serve.js', ...args], { cwd: ROOT, env: { ...inherited, ...env } });
}

function finished(child: ChildProcess): Promise<Run> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => (stdout += chunk));
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const cli = (args: string[], env?: Record<string, string>): Promise<Run> => finished(start(args, env));

describe('the client CLI against a running service', () => {
  let h: Harness;
  let out: string;
  let url: string[];
  before(async () => {
    h = await startHarness();
    out = await mkdtemp(join(tmpdir(), 'client-cli-'));
    url = ['--url', h.baseUrl];
  });
  after(async () => {
    await h.close();
    await closeSharedEngine();
    await rm(out, { recursive: true, force: true });
  });

  test('generate follows the events, writes the kept images and prints their paths', async () => {
    const run = await cli(['generate', 'a red circle', ...url, '--out', out, '--candidates', '8', '--n', '2']);
    assert.equal(run.code, 0, run.stderr);
    const paths = run.stdout.trim().split('\n');
    assert.equal(paths.length, 2);
    const [, id] = /([^/]+)-1\.png$/.exec(paths[0]) ?? [];
    assert.match(id, UUID);
    assert.deepEqual(paths, [join(out, `${id}-1.png`), join(out, `${id}-2.png`)]);
    for (const path of paths) {
      const { format, width, height } = await sharp(path).metadata();
      assert.deepEqual([format, width, height], ['png', 64, 64]);
    }
    // Not a terminal: a plain line per event on stderr, stdout kept for the paths.
    assert.match(run.stderr, /^processing sampling \d+\/8$/m);
  });

  test('--no-wait prints the id; watch follows it to the end; get prints it', async () => {
    const submitted = await cli([
      'generate',
      'a blue square',
      ...url,
      '--candidates',
      '8',
      '--n',
      '2',
      '--seed',
      '7',
      '--no-wait',
    ]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = submitted.stdout.trim();
    assert.match(id, UUID);

    const watched = await cli(['watch', id], { DALLE_SERVE_URL: h.baseUrl });
    assert.equal(watched.code, 0, watched.stderr);
    const [outcome, ...images] = watched.stdout.trim().split('\n');
    assert.equal(outcome, `succeeded ${id} model demo-shapes seed 7`);
    assert.deepEqual(
      images.map((line) => line.split(' ').slice(0, 1)),
      [['#1'], ['#2']],
    );
    assert.match(images[0], /^#1 score -?\d+\.\d{3} 64x64 http:\/\/127\.0\.0\.1:\d+\/files\/\S+$/);

    const got = await cli(['get', id, ...url]);
    assert.equal(got.code, 0, got.stderr);
    const generation = JSON.parse(got.stdout);
    assert.equal(generation.id, id);
    assert.equal(generation.status, 'succeeded');
    assert.equal(generation.images.length, 2);
  });

  test('models lists the demo pack as a table and as JSON', async () => {
    const table = await cli(['models', ...url]);
    assert.equal(table.code, 0, table.stderr);
    const [header, ...rows] = table.stdout.trim().split('\n');
    assert.match(header, /^NAME\s+VERSION\s+DEFAULT FOR\s+IMAGES\s+EMBED\s+LICENSE$/);
    assert.ok(
      rows.some((row) => /^demo-shapes\s+\S+\s+generations,clip\s+64x64\s+\d+/.test(row)),
      table.stdout,
    );
    const listed = await cli(['models', ...url, '--json']);
    assert.ok(JSON.parse(listed.stdout).data.some((model: { name: string }) => model.name === 'demo-shapes'));
  });

  test('classify ranks the labels of a file (uploaded) and of a URL (fetched by the service)', async () => {
    const labels = ['--labels', 'red circle, blue square', '--label', 'green triangle'];
    const file = await cli(['classify', SCENE, ...labels, ...url]);
    assert.equal(file.code, 0, file.stderr);
    const [name, ...lines] = file.stdout.trim().split('\n');
    assert.equal(name, SCENE);
    const scores = lines.map((line) => {
      const match = /^\s+(\d+\.\d)% {2}(red circle|blue square|green triangle)$/.exec(line);
      assert.ok(match, line);
      return Number(match[1]);
    });
    assert.equal(scores.length, 3);
    assert.deepEqual(
      scores,
      [...scores].sort((a, b) => b - a),
      'best first',
    );
    assert.ok(Math.abs(scores.reduce((sum, score) => sum + score, 0) - 100) < 0.5);

    const [image] = (await json(await fetch(`${h.baseUrl}/generations?limit=1`), GenerationList)).data[0].images;
    const both = await cli(['classify', SCENE, image.url, ...labels, ...url, '--json', '--top-k', '2']);
    assert.equal(both.code, 0, both.stderr);
    const answer = JSON.parse(both.stdout);
    assert.equal(answer.model, 'demo-shapes');
    assert.deepEqual(
      answer.results.map((result: { labels: unknown[] }) => result.labels.length),
      [2, 2],
    );
  });

  test('generate --image --keep-rows completes the uploaded image, its top rows kept', async () => {
    const run = await cli([
      'generate',
      'a blue circle above a red square',
      ...url,
      '--image',
      SCENE,
      '--keep-rows',
      '3',
      '--candidates',
      '8',
      '--n',
      '2',
      '--out',
      out,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const paths = run.stdout.trim().split('\n');
    assert.equal(paths.length, 2);
    const [, id] = /([^/]+)-1\.png$/.exec(paths[0]) ?? [];
    const kept = [...Array(3).fill('########'), ...Array(5).fill('........')];
    // The cells kept, from the 202, on stderr before the progress.
    assert.ok(
      run.stderr.startsWith(`completing ${SCENE}: 24 of 64 cells kept (# kept, . drawn anew)\n${kept.join('\n')}\n`),
      run.stderr,
    );
    const generation = await json(await fetch(`${h.baseUrl}/generations/${id}`), Generation);
    assert.equal(generation.status, 'succeeded');
    assert.deepEqual(generation.input.completion, {
      grid: [8, 8],
      image_size: [64, 64],
      keep_rows: 3,
      kept_cells: 24,
      kept,
    });
    assert.equal(generation.input.rank_by ?? 'prompt', 'prompt');
  });

  test('generate --image --mask keeps the cells the mask leaves opaque; --rank-by image', async () => {
    // Transparent (alpha 0) over cell (1, 5) and the bottom-left 2 × 2 cells of the 8 × 8 grid.
    const drawn = (x: number, y: number) => (y >> 3 === 1 && x >> 3 === 5) || (y >= 48 && x < 16);
    const pixels = Buffer.alloc(64 * 64 * 4);
    for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) pixels[(y * 64 + x) * 4 + 3] = drawn(x, y) ? 0 : 255;
    const mask = join(out, 'mask.png');
    await sharp(pixels, { raw: { width: 64, height: 64, channels: 4 } })
      .png()
      .toFile(mask);

    const run = await cli([
      'generate',
      'a blue circle above a red square',
      ...url,
      '--image',
      SCENE,
      '--mask',
      mask,
      '--rank-by',
      'image',
      '--candidates',
      '8',
      '--n',
      '2',
      '--no-wait',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const id = run.stdout.trim();
    assert.match(id, UUID);
    const kept = ['########', '#####.##', '########', '########', '########', '########', '..######', '..######'];
    assert.equal(run.stderr, `completing ${SCENE}: 59 of 64 cells kept (# kept, . drawn anew)\n${kept.join('\n')}\n`);
    const generation = await waitFor(h.baseUrl, id, terminal, 60_000);
    assert.equal(generation.status, 'succeeded');
    assert.equal(generation.input.rank_by, 'image');
    assert.equal(generation.input.completion?.keep_rows, null);
    assert.deepEqual(generation.input.completion?.kept, kept);
  });

  test('completion options checked before anything is sent; a file that cannot be read; the service’s refusal', async () => {
    // Nothing listens on port 9: a request would fail with connection_failed, not a usage error.
    const nowhere = ['--url', 'http://127.0.0.1:9'];
    const cases: [string[], RegExp][] = [
      [['--keep-rows', '2'], /^error usage: --keep-rows needs --image FILE$/m],
      [['--mask', SCENE], /^error usage: --mask needs --image FILE$/m],
      [['--image', SCENE], /^error usage: --image needs --keep-rows N or --mask FILE$/m],
      [['--image', SCENE, '--keep-rows', '2', '--mask', SCENE], /^error usage: give --keep-rows or --mask, not both$/m],
      [['--image', SCENE, '--keep-rows', 'top'], /^error usage: --keep-rows takes a whole number, not "top"$/m],
      [['--rank-by', 'image'], /^error usage: --rank-by image needs --image FILE$/m],
      [
        ['--image', SCENE, '--keep-rows', '2', '--rank-by', 'colour'],
        /^error usage: --rank-by is one of prompt, image, not "colour"$/m,
      ],
    ];
    for (const [args, message] of cases) {
      const run = await cli(['generate', 'a red circle', ...nowhere, ...args]);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.match(run.stderr, /\(see dalle-serve generate --help\)/);
      assert.equal(run.stdout, '');
    }

    const missing = await cli([
      'generate',
      'a red circle',
      ...url,
      '--image',
      join(out, 'nope.png'),
      '--keep-rows',
      '2',
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error unreadable_file: .*nope\.png/m);

    const refused = await cli(['generate', 'a red circle', ...url, '--image', SCENE, '--keep-rows', '8']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^error validation_failed: .*keep_rows.*below the grid's 8 rows/m);

    const help = await cli(['generate', '--help']);
    assert.equal(help.code, 0);
    for (const option of ['--image FILE', '--keep-rows N', '--mask FILE', '--rank-by WHAT']) {
      assert.ok(help.stdout.includes(option), option);
    }
  });

  test("a refusal exits 1 with the service's code and message", async () => {
    const run = await cli(['generate', 'a red circle', ...url, '--model', 'no-such-pack']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^error unknown_model: .*no-such-pack/m);
    assert.equal(run.stdout, '');

    const missing = await cli(['get', 'no-such-generation', ...url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error not_found: /m);
  });

  test('wrong arguments exit 2 with the usage to look at', async () => {
    const run = await cli(['generate', 'a red circle', ...url, '--candidates', 'many']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^error usage: --candidates takes a whole number/m);
    assert.match(run.stderr, /dalle-serve generate --help/);
  });

  test('Ctrl-C cancels the generation and exits 130', async () => {
    const child = start(['generate', 'a red circle', ...url, '--out', out, '--candidates', '4096', '--n', '1']);
    const done = finished(child);
    // Interrupted once the generation runs: its first progress line.
    await new Promise<void>((resolve) => {
      child.stderr?.on('data', (chunk: Buffer) => {
        if (/^processing /m.test(chunk.toString())) resolve();
      });
    });
    child.kill('SIGINT');
    const run = await done;
    assert.equal(run.code, 130, run.stderr);
    const [, id] = /^canceled (\S+)$/m.exec(run.stderr) ?? [];
    assert.match(id, UUID);
    await waitFor(h.baseUrl, id, (generation) => generation.status === 'canceled', 10_000);
    assert.equal(run.stdout, '');
  });
});

describe('the client CLI against a service that needs a key', () => {
  const KEY = 'client-cli-key-0123456789';
  let h: Harness;
  before(async () => {
    h = await startHarness({ worker: false, env: { API_KEYS: `cli:${KEY}` } });
  });
  after(() => h.close());

  test('a wrong key is refused with unauthorized; the right one from DALLE_SERVE_API_KEY is let in', async () => {
    const wrong = await cli(['models', '--url', h.baseUrl, '--key', 'not-the-key-0123456789']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^error unauthorized: the API key is not valid/m);
    const right = await cli(['models', '--json'], { DALLE_SERVE_URL: h.baseUrl, DALLE_SERVE_API_KEY: KEY });
    assert.equal(right.code, 0, right.stderr);
    assert.deepEqual(JSON.parse(right.stdout), { data: [] });
  });
});
