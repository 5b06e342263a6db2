#!/usr/bin/env bash
# The test command (`npm test`): static checks, then every TypeScript test file against real
# Redis, onnxruntime and sharp. Needs Node, Redis and chromium, no Python (the training side's
# checks are `npm run test:training`).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== typecheck"
npx tsc -p tsconfig.json --noEmit

echo "== format"
npx prettier --check . --log-level warn

echo "== lint"
npx eslint .

echo "== import cycles"
npx madge --circular --extensions ts src

echo "== openapi lint"
# The recommended rules (redocly.yaml); no telemetry, no update check: the tests stay offline.
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true npx redocly lint --format=stylish

echo "== tests"
# test/training needs Python's packages and runs with `npm run test:training`.
mapfile -t files < <(find test -path test/training -prune -o -name '*.test.ts' -print | sort)
# One file at a time: the model tests use both cores and the queue tests share one Redis.
# TAP for logs and CI (which reads the closing "# tests / # pass / # fail" lines), the spec
# reporter on a terminal; each file's duration goes to a file printed after the run.
reporter=tap
[ -t 1 ] && reporter=spec
durations=$(mktemp)
trap 'rm -f "$durations"' EXIT
status=0
node --import tsx --test --test-concurrency=1 --test-timeout=180000 \
  --test-reporter="$reporter" --test-reporter-destination=stdout \
  --test-reporter=./scripts/test-file-durations.mjs --test-reporter-destination="$durations" \
  "${files[@]}" || status=$?
echo "== test file durations (slowest first)"
cat "$durations"
exit "$status"
