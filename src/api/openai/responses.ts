// Documented error responses of the /v1 routes: OpenAI's error shape, grouped by status, each
// listing the catalogue codes it may carry (as the native routes' problem responses do).
import type { ErrorCode } from '../../errors.js';
import { type ErrorBodyShape, errorResponsesByStatus } from '../routes/responses.js';

const ALWAYS: ErrorCode[] = ['unauthorized', 'rate_limited', 'internal_error', 'service_unavailable'];
const OPENAI_ERROR: ErrorBodyShape = {
  label: 'OpenAI-shaped error',
  mediaType: 'application/json',
  schemaRef: 'OpenAIError#',
};

export function openAIErrorResponses(...codes: ErrorCode[]) {
  return errorResponsesByStatus([...codes, ...ALWAYS], OPENAI_ERROR);
}
