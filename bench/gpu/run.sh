#!/usr/bin/env bash
# On the GPU machine, from the repository root, once the CUDA kit's parts have been received
# (bench/gpu/README.md): parity with the PyTorch fixtures on CUDA, then bench:models on CUDA
# and on the same machine's CPU, and bench:clip (a real-size ViT-B/32 pack built there) on
# CUDA, each with PyTorch on the same device; then the sampler batch sweep and the scheduler,
# and minDALL-E's sample_loop at full size when the bundle has it. Results go to $OUT.
#   bash bench/gpu/run.sh [--kit /tmp/cuda-kit] [--skip-unpack]
set -uo pipefail
cd "$(dirname "$0")/../.."
KIT=/tmp/cuda-kit
UNPACK=1
while [ $# -gt 0 ]; do
  case "$1" in
    --kit) KIT="$2"; shift 2 ;;
    --skip-unpack) UNPACK=0; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-/tmp/gpu-results}"
mkdir -p "$OUT"
if [ "$UNPACK" = 1 ]; then
  bash "$KIT/unpack.sh" /tmp/ck . > "$OUT/unpack.txt" 2>&1 || { cat "$OUT/unpack.txt"; exit 2; }
fi
# shellcheck disable=SC1091
. /tmp/ck/env.sh
mkdir -p node_modules
tar -xJf .gpu-bundle/node_modules.tar.xz -C node_modules
PYTHON="${PYTHON:-$(command -v python3)}"
status=0
step() {  # step NAME COMMAND...: runs it, keeps its output in $OUT/NAME.txt, goes on after a failure
  local name="$1"; shift
  echo "== $name: $*"
  if "$@" > "$OUT/$name.txt" 2>&1; then tail -n 4 "$OUT/$name.txt"; else echo "FAILED ($?)"; tail -n 20 "$OUT/$name.txt"; status=1; fi
}
step gpu nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
step check-cuda node /tmp/ck/check-cuda.mjs
for pack in demo-shapes micro-dalle1; do
  step "parity-$pack-cuda" node training/check_reference.mjs "packs/$pack" test/fixtures/reference --device cuda
done
step bench-demo-cuda node .gpu-bundle/dist/bench-models.mjs --root . --device cuda --python "$PYTHON" --reference-state .gpu-bundle/demo-shapes.pt
step bench-micro-cuda node .gpu-bundle/dist/bench-models.mjs --root . --device cuda --pack micro-dalle1 --candidates 64 --python "$PYTHON" --reference-state .gpu-bundle/micro-dalle1.pt
step bench-demo-cpu node .gpu-bundle/dist/bench-models.mjs --root . --device cpu --python "$PYTHON" --reference-state .gpu-bundle/demo-shapes.pt
step bench-clip-cuda node .gpu-bundle/dist/bench-clip.mjs --root . --device cuda --python "$PYTHON"
# The sampler batch sweep at DALL·E 1 geometry and the generation scheduler in process.
step scheduler-sweep-cuda node .gpu-bundle/dist/scheduler-sweep.mjs --root . --device cuda
# minDALL-E's sample_loop at full size: the seeded random release (PyTorch only), its weights
# laid out as the graph sent here expects, then the sampler at 1 to 64 rows with GPU memory.
if [ -f .gpu-bundle/mindalle-full/weights-layout.json ]; then
  FULL_RELEASE=/tmp/mindalle-full-release
  step mindalle-full-release env PYTHONPATH=. "$PYTHON" -m training.tests.make_upstream_checkpoints "$FULL_RELEASE" --size full
  step mindalle-full-weights env PYTHONPATH=. "$PYTHON" bench/gpu/mindalle_full_weights.py weights .gpu-bundle/mindalle-full "$FULL_RELEASE/mindalle"
  step mindalle-full-sampler-cuda node .gpu-bundle/dist/sampler-full.mjs --dir .gpu-bundle/mindalle-full --device cuda
fi
exit "$status"
