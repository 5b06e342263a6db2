// A generation's progress on stderr: one line redrawn in place on a terminal, a plain line per
// event otherwise (logs, pipes, tests), so stdout keeps only the results.
import type { Generation } from './api.js';

export interface ProgressView {
  show(generation: Generation): void;
  /** Ends the line drawn in place, if any. */
  end(): void;
}

const BAR_WIDTH = 30;

export function progressView(stream: NodeJS.WritableStream & { isTTY?: boolean }): ProgressView {
  if (!stream.isTTY) return { show: (generation) => stream.write(`${describe(generation)}\n`), end: () => {} };
  let drawn = false;
  return {
    show(generation) {
      stream.write(`\r\x1b[2K${bar(generation)} ${describe(generation)}`);
      drawn = true;
    },
    end() {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}

/** `processing sampling 96/256`, or the status alone while there is no progress. */
function describe({ status, progress }: Generation): string {
  return progress ? `${status} ${progress.stage} ${progress.completed}/${progress.total}` : status;
}

function bar({ progress }: Generation): string {
  const share = progress && progress.total > 0 ? Math.min(1, progress.completed / progress.total) : 0;
  const filled = Math.round(share * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`;
}
