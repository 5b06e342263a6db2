// Documented error responses of the /v1 routes: OpenAI's error shape, grouped by status, each
// listing the catalogue codes it may carry (as the native routes' problem responses do).
import { ERRORS, type ErrorCode } from '../../errors.js';

const ALWAYS: ErrorCode[] = ['unauthorized', 'rate_limited', 'internal_error', 'service_unavailable'];

export function openAIErrorResponses(...codes: ErrorCode[]) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of [...codes, ...ALWAYS]) {
    const status = ERRORS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, statusCodes]) => [
      status,
      {
        description: `OpenAI-shaped error with code ${statusCodes.map((code) => `\`${code}\``).join(', ')}`,
        content: { 'application/json': { schema: { $ref: 'OpenAIError#' } } },
      },
    ]),
  );
}
