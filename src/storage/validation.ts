/** Thrown for an argument (key, prefix, content type, lifetime) a store refuses before touching its backend. */
export class InvalidStorageArgumentError extends Error {
  override readonly name = 'InvalidStorageArgumentError';
}

const MAX_KEY_LENGTH = 512;
// Segments never start with a dot: that rules out `.` and `..`, and leaves names starting
// with a dot free for the folder store's temp files and content-type sidecars.
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

function describe(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
}

function checkSegments(kind: string, value: string, segments: string[]): void {
  for (const segment of segments) {
    if (!SEGMENT.test(segment)) {
      throw new InvalidStorageArgumentError(
        `invalid object ${kind} ${describe(value)}: each "/"-separated part must be non-empty, ` +
          'use only letters, digits, ".", "_" and "-", and not start with "."',
      );
    }
  }
}

function checkString(kind: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_KEY_LENGTH) {
    throw new InvalidStorageArgumentError(
      `invalid object ${kind} ${describe(value)}: expected 1 to ${MAX_KEY_LENGTH} characters`,
    );
  }
}

/** Accepts `generations/abc/1.png`; rejects `..`, absolute paths, backslashes, odd characters. */
export function assertValidKey(key: unknown): asserts key is string {
  checkString('key', key);
  checkSegments('key', key, key.split('/'));
}

/**
 * A prefix follows the key rules, except that it may end in "/" (a whole folder) or in a
 * partial segment. It may not be empty: deleting everything is never what a caller means.
 */
export function assertValidPrefix(prefix: unknown): asserts prefix is string {
  checkString('prefix', prefix);
  const segments = prefix.split('/');
  if (segments.at(-1) === '') segments.pop();
  checkSegments('prefix', prefix, segments);
}

export function isValidKey(key: unknown): key is string {
  try {
    assertValidKey(key);
    return true;
  } catch {
    return false;
  }
}

// `type/subtype` with optional parameters; no CR/LF or other controls, because the value
// is sent back as a Content-Type header.
const CONTENT_TYPE =
  /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=("[^"\x00-\x1f\x7f]*"|[A-Za-z0-9!#$&^_.+-]+))*$/;

export function assertValidContentType(contentType: unknown): asserts contentType is string {
  if (typeof contentType !== 'string' || contentType.length > 200 || !CONTENT_TYPE.test(contentType)) {
    throw new InvalidStorageArgumentError(
      `invalid content type ${describe(contentType)}: expected a MIME type such as "image/png"`,
    );
  }
}

export function assertValidBody(body: unknown): asserts body is Uint8Array {
  if (!(body instanceof Uint8Array)) {
    throw new InvalidStorageArgumentError(`invalid object body: expected a Uint8Array, got ${describe(body)}`);
  }
}

/** URL lifetimes are whole seconds, at least one. */
export function assertValidLifetime(seconds: unknown): asserts seconds is number {
  if (typeof seconds !== 'number' || !Number.isSafeInteger(seconds) || seconds < 1) {
    throw new InvalidStorageArgumentError(
      `invalid URL lifetime ${String(seconds)}: expected a whole number of seconds, at least 1`,
    );
  }
}
