// Documented error responses per route, grouped by status: the OpenAPI document lists every
// code a route can answer with (a test checks that the catalogue is covered).
import { ERRORS, type ErrorCode } from '../../errors.js';

const ALWAYS: ErrorCode[] = ['internal_error', 'service_unavailable'];
/** What every route behind an API key may answer. */
const AUTHENTICATED: ErrorCode[] = ['unauthorized', 'rate_limited'];

export function problemResponses(...codes: ErrorCode[]) {
  return publicProblemResponses(...AUTHENTICATED, ...codes);
}

/** For routes served without a key. */
export function publicProblemResponses(...codes: ErrorCode[]) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of [...codes, ...ALWAYS]) {
    const status = ERRORS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, statusCodes]) => [
      status,
      {
        description: `Problem details with code ${statusCodes.map((code) => `\`${code}\``).join(', ')}`,
        content: { 'application/problem+json': { schema: { $ref: 'Problem#' } } },
      },
    ]),
  );
}
