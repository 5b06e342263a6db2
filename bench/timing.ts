// Timing helpers shared by the benchmarks: every throughput is the best of a few rounds.

/** Each throughput is the best of this many rounds, here and in the PyTorch references. */
export const ROUNDS = 3;

export async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const result = await fn();
  return [result, performance.now() - start];
}

/** The fastest of ROUNDS runs, in ms: a shared machine's noise only ever slows a round down. */
export async function bestMs(run: (round: number) => Promise<unknown>): Promise<number> {
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) best = Math.min(best, (await timed(() => run(round)))[1]);
  return best;
}

export const fmt = (x: number) => x.toFixed(x >= 100 ? 0 : 1);
