#!/usr/bin/env bash
# The training side's checks (`npm run test:training`): Ruff over the Python (scripts/lint-python.mjs),
# the Python unit tests, and the OpenAI CLIP exporter run for real on a small checkpoint and served
# by the engine. Needs what
# `npm test` needs plus /usr/bin/python3 with Debian's python3-numpy, python3-pil,
# python3-torch, python3-regex and python3-onnx.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== python lint"
node scripts/lint-python.mjs

echo "== python checks"
/usr/bin/python3 -m unittest discover -s training/tests -t . -v

echo "== training tests"
mapfile -t files < <(find test/training -name '*.test.ts' | sort)
node --import tsx --test --test-concurrency=1 --test-timeout=600000 "${files[@]}"
