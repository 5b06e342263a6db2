#!/usr/bin/env bash
# Builds .gpu-bundle/: what bench/gpu/run.sh needs on a GPU machine that has no Node modules
# and no network (the CUDA kit brings Node and onnxruntime-node with its CUDA provider).
#   bash bench/gpu/bundle.sh          (here, with node_modules installed and Debian's PyTorch)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=.gpu-bundle
# Two levels below the root, like src/models/, so that the bundled manifest.ts finds
# packs/manifest.schema.json at the same relative path.
DIST="$OUT/dist"
rm -rf "$OUT"
mkdir -p "$DIST"
# onnxruntime-node comes from the kit and sharp is native: both stay outside the bundle, as does
# transformers.js, which bench:clip imports only on the CPU.
# The engine thread is a second entry point next to the benchmark, where engine.ts looks for it.
npx esbuild bench/models.ts bench/clip.ts bench/gpu/scheduler-sweep.ts bench/gpu/sampler-full.ts src/models/engine-thread.ts --bundle --platform=node --format=esm \
  --target=node20 --outdir="$DIST" --entry-names='[name]' --out-extension:.js=.mjs \
  --external:onnxruntime-node --external:sharp --external:@huggingface/transformers --log-level=warning \
  --banner:js="import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"
mv "$DIST/engine-thread.mjs" "$DIST/engine-thread.js"
mv "$DIST/models.mjs" "$DIST/bench-models.mjs"
mv "$DIST/clip.mjs" "$DIST/bench-clip.mjs"
echo '{ "type": "module" }' > "$DIST/package.json"
# sharp and what it loads at run time, compressed (libvips alone is 18 MB).
tar -cJf "$OUT/node_modules.tar.xz" -C node_modules sharp detect-libc semver @img/colour @img/sharp-linux-x64 @img/sharp-libvips-linux-x64
# The packs' weights for the PyTorch reference, which there has no onnx package to read graphs.
for pack in demo-shapes micro-dalle1; do
  PYTHONPATH=. /usr/bin/python3 -m training.pack.weights "packs/$pack" "$OUT/$pack.pt"
done
# minDALL-E's full-size sample_loop without its weights, which run.sh writes there (a pack
# exported here by bench/mindalle-full.sh; skipped without one).
FULL="${MINDALLE_FULL:-/tmp/mindalle-full/packs-fp32/mindalle-full}"
if [ -f "$FULL/manifest.json" ]; then
  PYTHONPATH=. /usr/bin/python3 bench/gpu/mindalle_full_weights.py layout "$FULL" "$OUT/mindalle-full"
else
  echo "no full-size minDALL-E pack at $FULL: the bundle leaves its sampler run out" >&2
fi
du -sh "$OUT"
