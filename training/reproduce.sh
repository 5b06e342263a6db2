#!/usr/bin/env bash
# Reproduce the demo pack from nothing: data, VQ-VAE, CLIP, generator, export, evaluation,
# reference fixtures and the onnxruntime checks; the micro pack is rebuilt from its seed.
#   bash training/reproduce.sh [--device cuda] [--run DIR] [--profile cpu|cuda|smoke]
# The cpu profile makes packs/demo-shapes; cuda and smoke the larger variant, packs/demo-shapes-large.
# A run folder trained elsewhere (bench/gpu/train.sh) is finished here with its profile:
# its trained stages are loaded, not redone.
# Needs Debian's python3-torch, python3-onnx, python3-numpy, python3-pil and Node with the
# repository's node_modules (onnxruntime-node, sharp, ajv) for the checks.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cpu
RUN=training/runs/demo
PROFILE=
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --run) RUN="$2"; shift 2 ;;
    --profile) PROFILE="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
# The profile train.py picks by default: cuda on a GPU.
# The larger variant is not committed: its reference fixture stays in the run folder, and the
# smoke profile's evaluation is a token one.
case "${PROFILE:-$DEVICE}" in
  cpu) PACK=demo-shapes REFERENCE=test/fixtures/reference EVALUATE=() ;;
  smoke) PACK=demo-shapes-large REFERENCE="$RUN/reference" EVALUATE=(--prompts 1 --candidates 16 --top 4) ;;
  *) PACK=demo-shapes-large REFERENCE="$RUN/reference" EVALUATE=() ;;
esac
PYTHON="${PYTHON:-/usr/bin/python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
TOKENIZER=training/tokenizer/shapes-bpe.json
mkdir -p "$RUN"

if [ ! -f "$TOKENIZER" ]; then
  "$PYTHON" -m training.world.bpe --out "$TOKENIZER"
fi
# OpenBLAS's own threads fight torch's pool on a small CPU; one each is faster.
export OPENBLAS_NUM_THREADS=1
train() { "$PYTHON" -m training.model.train --run "$RUN" --device "$DEVICE" ${PROFILE:+--profile "$PROFILE"} "$@"; }
train --stages data
# The image tokenizer first: the generator trains on its codes and CLIP on its reconstructions
# too. Then one core each for the generator and CLIP.
train --stages vqvae
train --stages generator --threads 1 > "$RUN/generator.out" 2>&1 &
generator=$!
train --stages clip --threads 1 > "$RUN/clip.out" 2>&1 &
clip=$!
wait "$generator" || { cat "$RUN/generator.out"; exit 1; }
wait "$clip" || { cat "$RUN/clip.out"; exit 1; }
"$PYTHON" -m training.export.demo_pack --run "$RUN" --device "$DEVICE" --pack "packs/$PACK" ${PROFILE:+--profile "$PROFILE"}
"$PYTHON" -m training.export.random_pack micro packs/micro-dalle1 "$TOKENIZER"
mkdir -p "$REFERENCE"
for pack in "$PACK" micro-dalle1; do
  reference=$([ "$pack" = "$PACK" ] && echo "$REFERENCE" || echo test/fixtures/reference)
  "$PYTHON" -m training.eval.reference "packs/$pack" "$reference"
  node training/check_onnx.mjs "packs/$pack"
  node training/check_reference.mjs "packs/$pack" "$reference"
done
# The training and the held-out phrasings side by side, one core each.
for phrasings in training heldout; do
  EVAL_THREADS=1 "$PYTHON" -m training.eval.evaluate "packs/$PACK" --phrasings "$phrasings" ${EVALUATE[@]+"${EVALUATE[@]}"} \
    --out "$RUN/evaluation-$phrasings.json" > "$RUN/evaluation-$phrasings.out" 2>&1 &
  eval "evaluation_$phrasings=\$!"
done
wait "$evaluation_training" || { cat "$RUN/evaluation-training.out"; exit 1; }
wait "$evaluation_heldout" || { cat "$RUN/evaluation-heldout.out"; exit 1; }
"$PYTHON" -m training.eval.evaluate --merge "$RUN/evaluation-training.json" "$RUN/evaluation-heldout.json" \
  --out "$RUN/evaluation.json"
