// Calls to the API from the page: the key (when the server needs one) goes in the Authorization
// header, never in a URL, and an error answer becomes an Error carrying the problem's detail,
// code and field errors (RFC 9457 problem details, src/errors.ts).
const KEY_STORAGE = 'dalle-serve.api-key';

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE) ?? '';
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export function authHeaders() {
  const key = storedKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

export class ProblemError extends Error {
  constructor(status, problem) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
    this.status = status;
    this.code = problem.code;
    /** `[{ field, message }]` for a validation_failed answer; empty otherwise. */
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

export async function problemOf(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  return new ProblemError(response.status, problem);
}

export async function api(path, { method = 'GET', json, body, headers = {} } = {}) {
  const response = await fetch(path, {
    method,
    headers: { ...authHeaders(), ...(json !== undefined && { 'content-type': 'application/json' }), ...headers },
    body: json !== undefined ? JSON.stringify(json) : body,
  });
  if (!response.ok) throw await problemOf(response);
  return response.status === 204 ? null : response.json();
}
