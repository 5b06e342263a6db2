// A node:test reporter that records how long each test file took, so that slow files show.
// Files run one at a time (--test-concurrency=1): a file runs from the moment the runner
// takes it up until it takes up the next one, or the run ends.
import { relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';

export default async function* fileDurations(source) {
  const durations = [];
  let current;
  const finish = () => current && durations.push([current.file, performance.now() - current.started]);
  for await (const event of source) {
    const { nesting, name, file } = event.data ?? {};
    if (event.type === 'test:dequeue' && nesting === 0 && file && name === file) {
      finish();
      current = { file, started: performance.now() };
    }
  }
  finish();
  durations.sort((a, b) => b[1] - a[1]);
  for (const [file, ms] of durations)
    yield `${(ms / 1000).toFixed(1).padStart(7)} s  ${relative(process.cwd(), file)}\n`;
}
