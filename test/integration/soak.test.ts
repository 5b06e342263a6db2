// The chaos soak in short: 30 s with a fixed seed, each fault once, and the checker's every
// invariant held (`npm run soak` runs it longer; the README shows a 5-minute run).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { faultsOf, formatReport, runSoak } from '../soak/soak.js';

test('a 30-second soak with every fault keeps every promise', async () => {
  const report = await runSoak({ seconds: 30, seed: 1 });
  const text = formatReport(report);
  for (const fault of faultsOf('single'))
    assert.ok((report.faults[fault] ?? 0) >= 1, `${fault} was not injected\n${text}`);
  assert.ok((report.generations.succeeded ?? 0) > 0, `nothing succeeded\n${text}`);
  const broken = Object.entries(report.violations).filter(([, list]) => list.length > 0);
  assert.deepEqual(broken, [], text);
});
