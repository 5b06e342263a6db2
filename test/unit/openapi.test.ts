// The committed OpenAPI document is what the routes generate, and it is valid OpenAPI 3.1.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { compileErrors, validate } from '@readme/openapi-parser';
import { generateOpenApi, serializeOpenApi } from '../../src/api/openapi.js';

const committedPath = new URL('../../openapi/openapi.json', import.meta.url);

test('openapi/openapi.json matches the routes (run `npm run openapi` after changing them)', async () => {
  const generated = serializeOpenApi(await generateOpenApi());
  assert.equal(readFileSync(committedPath, 'utf8'), generated);
});

test('the document is valid OpenAPI 3.1', async () => {
  const document = JSON.parse(readFileSync(committedPath, 'utf8'));
  assert.equal(document.openapi, '3.1.0');
  const result = await validate(document);
  assert.ok(result.valid, result.valid ? '' : compileErrors(result));
});

test('the document covers the whole HTTP contract', () => {
  const document = JSON.parse(readFileSync(committedPath, 'utf8'));
  const operations = Object.entries(document.paths as Record<string, Record<string, unknown>>).flatMap(
    ([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
  );
  for (const operation of [
    'POST /generations',
    'GET /generations',
    'GET /generations/{id}',
    'DELETE /generations/{id}',
    'POST /generations/{id}/cancel',
    'POST /clip/classify',
    'POST /clip/embed',
    'GET /models',
    'GET /healthz',
    'GET /readyz',
    'GET /metrics',
  ]) {
    assert.ok(operations.includes(operation), `${operation} is documented`);
  }
  const classify = document.paths['/clip/classify'].post.requestBody.content;
  assert.ok(classify['application/json'] && classify['multipart/form-data'], 'classify takes JSON and multipart');
});
