// The error catalogue: every code is documented in docs/errors.md and every response code in
// the OpenAPI document under its status; problem details carry what RFC 9457 asks for.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERRORS, ERROR_CODES, FAILURE_CODES, ServiceError, fieldError, toProblem } from '../../src/errors.js';
import { parseFailure } from '../../src/contracts/jobs.js';
import { asServiceError } from '../../src/api/plugins/errors.js';
import { MODEL_ERROR_CODES } from '../../src/lib/model-error-codes.js';

const document = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'));

function documentedCodes(): Map<string, Set<number>> {
  const codes = new Map<string, Set<number>>();
  for (const methods of Object.values(document.paths as Record<string, Record<string, any>>)) {
    for (const operation of Object.values(methods)) {
      for (const [status, response] of Object.entries(operation.responses ?? {}) as [string, any][]) {
        for (const [, code] of String(response.description).matchAll(/`([a-z_]+)`/g)) {
          codes.set(code, (codes.get(code) ?? new Set()).add(Number(status)));
        }
      }
    }
  }
  return codes;
}

test('every response code is documented by some route, under its own status', () => {
  const documented = documentedCodes();
  for (const code of ERROR_CODES) {
    assert.ok(documented.has(code), `${code} is documented in openapi/openapi.json`);
    assert.deepEqual(
      [...(documented.get(code) ?? [])],
      [ERRORS[code].status],
      `${code} is documented only as ${ERRORS[code].status}`,
    );
  }
  for (const code of documented.keys()) assert.ok(code in ERRORS, `${code} is documented but not in the catalogue`);
});

test('the Problem schema lists exactly the response codes, a generation error exactly the job codes', () => {
  assert.deepEqual(document.components.schemas.Problem.properties.code.enum, ERROR_CODES);
  const generation = document.components.schemas.Generation;
  const error = generation.properties.error.anyOf.find((schema: any) => schema.type === 'object');
  assert.deepEqual(error.properties.code.enum, FAILURE_CODES);
});

/** The rows of docs/errors.md's table, as cells. */
function documentedTable(): string[][] {
  const text = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) =>
      line
        .slice(1, -1)
        .split('|')
        .map((cell) => cell.trim()),
    );
}

test('docs/errors.md documents every code with its status, place and retry rule, and no other code', () => {
  const rows = documentedTable();
  const expected = Object.entries(ERRORS).map(([code, spec]) => [
    `\`${code}\``,
    String(spec.status),
    spec.in.join(', '),
    spec.in.includes('job' as never) ? (spec.retry ? 'yes' : 'no') : '—',
    spec.title,
  ]);
  assert.deepEqual(
    rows.map((row) => row[0]),
    expected.map((row) => row[0]),
    'the same codes in the same order',
  );
  assert.deepEqual(rows, expected);
});

test("the engine's codes are job codes of the catalogue", () => {
  for (const code of MODEL_ERROR_CODES) assert.ok((FAILURE_CODES as string[]).includes(code), code);
});

test('failure reasons read back their code; unknown and former ones are mapped', () => {
  assert.deepEqual(parseFailure('storage_failed: S3 said no'), { code: 'storage_failed', message: 'S3 said no' });
  assert.deepEqual(parseFailure('invalid_input: topK too big'), { code: 'validation_failed', message: 'topK too big' });
  assert.equal(parseFailure('no_such_code: x').code, 'internal_error');
  assert.equal(parseFailure('job stalled more than allowable limit').code, 'worker_lost');
});

test('codes are stable snake_case, statuses are 4xx or 5xx, titles are set', () => {
  for (const [code, { status, title }] of Object.entries(ERRORS)) {
    assert.match(code, /^[a-z]+(_[a-z]+)*$/);
    assert.ok(status >= 400 && status < 600, code);
    assert.ok(title.length > 0, code);
  }
});

test('a problem carries type, title, status, detail, code and the fields at fault', () => {
  const problem = toProblem(fieldError('n', 'must be at most candidates (4)'), '/generations');
  assert.deepEqual(problem, {
    type: 'urn:dalle-serve:error:validation_failed',
    title: ERRORS.validation_failed.title,
    status: 400,
    detail: 'n must be at most candidates (4)',
    code: 'validation_failed',
    instance: '/generations',
    errors: [{ field: 'n', message: 'must be at most candidates (4)' }],
  });
  const full = new ServiceError('queue_full', 'too many', { retryAfterSeconds: 5 });
  assert.equal(full.status, 503);
  assert.equal(toProblem(full).errors, undefined);
});

test('Redis between masters is a 503 to retry, whatever its topology says; other errors stay 500s', () => {
  const failover = [
    'Connection is closed.',
    'Too many Cluster redirections. Last error: ReplyError: CLUSTERDOWN The cluster is down',
    'TRYAGAIN Multiple keys request during rehashing of slot',
    "READONLY You can't write against a read only replica.",
    'LOADING Redis is loading the dataset in memory',
  ];
  for (const message of failover) assert.equal(asServiceError(new Error(message))?.status, 503, message);
  assert.equal(asServiceError(new Error('ERR wrong number of arguments')), null);
});
