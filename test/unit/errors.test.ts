// The error catalogue: every code is documented in the OpenAPI document under its status,
// and problem details carry what RFC 9457 asks for.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERRORS, ERROR_CODES, ServiceError, fieldError, toProblem } from '../../src/errors.js';

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

test('every code in the catalogue is documented by some route, under its own status', () => {
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

test('the Problem schema lists exactly the catalogue codes', () => {
  assert.deepEqual(document.components.schemas.Problem.properties.code.enum, ERROR_CODES);
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
