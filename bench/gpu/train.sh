#!/usr/bin/env bash
# On the GPU machine: the recipe's training stages with the `cuda` profile (the larger variant,
# demo-shapes-large: bigger models, data and step counts), writing the run (checkpoints,
# log.jsonl) under $OUT/run. That Python has PyTorch but
# no onnx package, so export, fixtures and evaluation happen back here:
#   bash training/reproduce.sh --run <the fetched run folder>   (every trained stage is loaded, not redone)
#   bash bench/gpu/train.sh [--profile cuda|smoke] [--device cuda]
set -euo pipefail
cd "$(dirname "$0")/../.."
PROFILE=cuda
DEVICE=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-/tmp/gpu-results}"
RUN="$OUT/run"
mkdir -p "$RUN"
PYTHON="${PYTHON:-$(command -v python3)}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0))' | tee "$RUN/device.txt"
train() { "$PYTHON" -m training.model.train --run "$RUN" --device "$DEVICE" --profile "$PROFILE" --threads 4 "$@"; }
train --stages data
train --stages vqvae
# Both models fit one GPU side by side, as the CPU recipe runs them on two cores.
train --stages generator > "$RUN/generator.out" 2>&1 &
generator=$!
train --stages clip > "$RUN/clip.out" 2>&1 &
clip=$!
wait "$generator" || { tail -n 30 "$RUN/generator.out"; exit 1; }
wait "$clip" || { tail -n 30 "$RUN/clip.out"; exit 1; }
# The data is rebuilt from its seed here; only what training made comes back.
rm -f "$RUN/data.npz" "$RUN/codes.npy"
ls -la "$RUN"
