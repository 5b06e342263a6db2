// The import rules of src/ (README, "Layout"): each folder or root module imports only the
// ones listed for it, so the layers stay as they are drawn.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** What each part of src/ may import (besides itself). */
const ALLOWED: Record<string, string[]> = {
  lib: [],
  errors: ['lib'],
  logger: [],
  net: ['lib'],
  storage: ['lib'],
  webhooks: ['lib', 'net'],
  models: ['lib'],
  contracts: ['errors', 'lib'],
  config: ['contracts', 'lib', 'models', 'net', 'storage', 'webhooks'],
  process: ['config', 'logger'],
  queue: ['config', 'contracts', 'errors', 'lib'],
  service: ['config', 'contracts', 'errors', 'lib', 'logger', 'net', 'queue', 'storage', 'webhooks'],
  api: ['config', 'contracts', 'errors', 'lib', 'logger', 'net', 'process', 'queue', 'service', 'storage'],
  worker: [
    'config',
    'contracts',
    'errors',
    'lib',
    'logger',
    'models',
    'net',
    'process',
    'queue',
    'service',
    'storage',
    'webhooks',
  ],
  cli: ['config', 'contracts', 'errors', 'lib', 'logger', 'models', 'process', 'queue', 'service', 'storage'],
  start: ['api', 'config', 'logger', 'process', 'worker'],
  // A client of the HTTP contract only: its types are generated from the OpenAPI document.
  client: [],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** `api` for src/api/…, `config` for src/config.ts. */
function partOf(path: string): string {
  const [first, ...rest] = relative(SRC, path).split('/');
  return rest.length > 0 ? first : first.replace(/\.(ts|js)$/, '');
}

function relativeImports(source: string): string[] {
  return [...source.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)].map((match) => match[1]);
}

test('every part of src/ has import rules', () => {
  const parts = new Set(sourceFiles(SRC).map(partOf));
  assert.deepEqual(
    [...parts].filter((part) => !(part in ALLOWED)),
    [],
  );
});

test('src/ imports follow the layer rules', () => {
  const violations: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = partOf(file);
    for (const specifier of relativeImports(readFileSync(file, 'utf8'))) {
      const to = partOf(normalize(join(dirname(file), specifier)));
      if (to !== from && !ALLOWED[from].includes(to)) violations.push(`${relative(SRC, file)} imports ${specifier}`);
    }
  }
  assert.deepEqual(violations, []);
});

test('the rules catch a forbidden import', () => {
  const file = join(SRC, 'models', 'engine.ts');
  const to = partOf(normalize(join(dirname(file), '../queue/redis.js')));
  assert.equal(ALLOWED[partOf(file)].includes(to), false);
});
