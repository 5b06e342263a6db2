// The committed OpenAPI document is what the routes generate, and it is valid OpenAPI 3.1; the
// client's committed types are what openapi-typescript makes of it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { compileErrors, validate } from '@readme/openapi-parser';
import { CLIENT_TYPES_PATH, renderClientTypes } from '../../scripts/write-openapi.js';
import { generateOpenApi, serializeOpenApi } from '../../src/api/openapi.js';

const committedPath = new URL('../../openapi/openapi.json', import.meta.url);

test('openapi/openapi.json matches the routes (run `npm run openapi` after changing them)', async () => {
  const generated = serializeOpenApi(await generateOpenApi());
  assert.equal(readFileSync(committedPath, 'utf8'), generated);
});

test('src/client/openapi-types.ts matches the document (run `npm run openapi` after changing it)', async () => {
  const generated = await renderClientTypes(readFileSync(committedPath, 'utf8'));
  assert.equal(readFileSync(CLIENT_TYPES_PATH, 'utf8'), generated);
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
    'GET /files/{key}',
    'POST /v1/images/generations',
    'GET /v1/models',
    'GET /v1/models/{model}',
    'POST /v1/embeddings',
  ]) {
    assert.ok(operations.includes(operation), `${operation} is documented`);
  }
  const classify = document.paths['/clip/classify'].post.requestBody.content;
  assert.ok(classify['application/json'] && classify['multipart/form-data'], 'classify takes JSON and multipart');
});

test('tools can use it: operation ids, a server, named schemas, the webhook body, no `*` parameter', () => {
  const document = JSON.parse(readFileSync(committedPath, 'utf8'));
  const operations = Object.values(document.paths as Record<string, Record<string, any>>).flatMap((methods) =>
    Object.values(methods),
  );
  const ids = operations.map((operation) => operation.operationId);
  assert.ok(
    ids.every((id) => typeof id === 'string' && id.length > 0),
    'every operation has an operationId',
  );
  assert.equal(new Set(ids).size, ids.length, 'operation ids are unique');
  assert.equal(document.servers[0].url, 'http://localhost:3000');
  for (const name of ['Generation', 'GenerationAccepted', 'GenerationList', 'Problem', 'ModelInfo', 'OpenAIError'])
    assert.ok(document.components.schemas[name], `${name} is a named schema`);
  assert.deepEqual(document.paths['/generations/{id}'].get.responses['200'].content['application/json'].schema, {
    $ref: '#/components/schemas/Generation',
  });
  assert.equal(
    document.webhooks.generationEvent.post.requestBody.content['application/json'].schema.$ref,
    '#/components/schemas/WebhookEvent',
  );
  assert.ok(!Object.keys(document.paths).some((path) => path.includes('{*}')));
  assert.ok(Object.keys(document.paths['/metrics'].get.responses['200'].content)[0].startsWith('text/plain'));
});
