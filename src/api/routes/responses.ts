// Documented error responses per route, grouped by status: the OpenAPI document lists every
// code a route can answer with (a test checks that the catalogue is covered).
import { ERRORS, type ErrorCode } from '../../errors.js';

const ALWAYS: ErrorCode[] = ['internal_error', 'service_unavailable'];
/** What every route behind an API key may answer. */
const AUTHENTICATED: ErrorCode[] = ['unauthorized', 'rate_limited'];

/** How an error body is documented: its name in the description, media type and schema. */
export interface ErrorBodyShape {
  label: string;
  mediaType: string;
  schemaRef: string;
}

const PROBLEM: ErrorBodyShape = {
  label: 'Problem details',
  mediaType: 'application/problem+json',
  schemaRef: 'Problem#',
};

/** One response per HTTP status among the codes, listing the codes it may carry, in order. */
export function errorResponsesByStatus(codes: ErrorCode[], shape: ErrorBodyShape) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERRORS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, statusCodes]) => [
      status,
      {
        description: `${shape.label} with code ${statusCodes.map((code) => `\`${code}\``).join(', ')}`,
        content: { [shape.mediaType]: { schema: { $ref: shape.schemaRef } } },
      },
    ]),
  );
}

export function problemResponses(...codes: ErrorCode[]) {
  return publicProblemResponses(...AUTHENTICATED, ...codes);
}

/** For routes served without a key. */
export function publicProblemResponses(...codes: ErrorCode[]) {
  return errorResponsesByStatus([...codes, ...ALWAYS], PROBLEM);
}
