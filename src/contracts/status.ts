// The one lifecycle of a generation, as clients see it.
export const GENERATION_STATUSES = ['queued', 'processing', 'succeeded', 'failed', 'canceled'] as const;
export type GenerationStatus = (typeof GENERATION_STATUSES)[number];

const TERMINAL: ReadonlySet<GenerationStatus> = new Set(['succeeded', 'failed', 'canceled']);

/** True once a generation can change no more: it succeeded, failed or was canceled. */
export function isTerminal(status: GenerationStatus): boolean {
  return TERMINAL.has(status);
}

export const GENERATION_STAGES = ['sampling', 'decoding', 'reranking', 'storing'] as const;
export type GenerationStage = (typeof GENERATION_STAGES)[number];

export interface GenerationProgress {
  stage: GenerationStage;
  completed: number;
  total: number;
}
