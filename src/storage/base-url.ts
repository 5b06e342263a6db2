/** An absolute http(s) base URL without a trailing slash, or a clear error naming the setting. */
export function parseBaseUrl(setting: string, value: unknown): string {
  let parsed: URL | undefined;
  try {
    parsed = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!parsed || !['http:', 'https:'].includes(parsed.protocol) || parsed.search || parsed.hash) {
    throw new Error(
      `${setting} must be an absolute http(s) URL without query or fragment, got ${JSON.stringify(value)}`,
    );
  }
  return parsed.href.replace(/\/+$/, '');
}
