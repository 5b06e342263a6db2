"""PyTorch reference numbers for the TypeScript benchmark, on the same weights as a pack.

Usage: python3 -m training.eval.bench_reference --pack packs/demo-shapes --state demo-shapes.pt
           [--candidates 512] [--batch 64] [--device cuda]
The weights come from a state file saved by `python3 -m training.pack.weights PACK STATE.pt`, so
that this runs where PyTorch has no onnx package to read graphs with (bench/gpu/README.md).
Prints one JSON object: KV-cache sampling throughput (one prefill and N-1 steps per chunk of
`batch` candidates, the contract's sampling rule) and CLIP image throughput by batch size,
with the BLAS library torch runs on.
"""
import argparse
import json
import re
import sys
import time

import torch

from training.model.sampling import sample_images
from training.pack.state import load_state

CLIP_BATCHES = (1, 16, 64)
ROUNDS = 3


def blas_in_use():
    """What torch was built against, and the BLAS shared library actually mapped."""
    built = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    with open("/proc/self/maps") as f:
        libraries = sorted({line.split()[-1] for line in f if re.search(r"blas|mkl", line.split()[-1])})
    return {"torch_build": built.group(1) if built else "unknown", "libraries": libraries}


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def sampler_tokens_per_s(generator, manifest, candidates, batch, device):
    t, n = manifest["geometry"]["text_length"], generator.config.image_tokens
    defaults = manifest["generator"]["sampling_defaults"]
    uniforms = torch.rand(candidates, n, generator=torch.Generator().manual_seed(0)).to(device)

    def run(rows):
        return sample_images(generator, torch.zeros(len(rows), t, dtype=torch.long, device=device), rows,
                             defaults["top_k"], defaults["temperature"], defaults.get("top_p", 1.0))

    run(uniforms[:batch])  # warm-up: first-call allocations (and CUDA kernels' first launches)
    best = float("inf")
    for _ in range(ROUNDS):  # best of ROUNDS, as the TypeScript side measures
        synchronize(device)
        began = time.perf_counter()
        for start in range(0, candidates, batch):
            run(uniforms[start:start + batch])
        synchronize(device)
        best = min(best, time.perf_counter() - began)
    return candidates * n / best


@torch.no_grad()
def per_second(run, batch, device, seconds=1.0):
    """Items per second of `run` (one batch per call): the best of ROUNDS rounds of ~1 s."""
    run()  # warm-up
    best = 0.0
    for _ in range(ROUNDS):
        synchronize(device)
        done, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            run()
            done += batch
        synchronize(device)
        best = max(best, done / (time.perf_counter() - began))
    return best


def clip_images_per_s(clip, size, batch, device):
    pixels = torch.randn(batch, 3, size, size, device=device)
    return per_second(lambda: clip.visual(pixels), batch, device)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pack", default="packs/demo-shapes")
    parser.add_argument("--candidates", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--state", required=True, help="the pack's weights, saved by training.pack.weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifest, generator, _, clip = load_state(args.pack, args.state)
    generator, clip = generator.to(args.device), clip.to(args.device)
    blas = blas_in_use()
    print(f"torch {torch.__version__}, BLAS: {blas['torch_build']} -> {', '.join(blas['libraries']) or 'none mapped'}",
          file=sys.stderr)
    size = manifest["clip"]["preprocess"]["size"]
    result = {
        "pack": manifest["name"],
        "torch": torch.__version__,
        "threads": args.threads,
        "device": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu",
        "blas": blas,
        "candidates": args.candidates,
        "batch": args.batch,
        "sampler_tokens_per_s": round(
            sampler_tokens_per_s(generator, manifest, args.candidates, args.batch, args.device), 1),
        "clip_images_per_s": {str(b): round(clip_images_per_s(clip, size, b, args.device), 1) for b in CLIP_BATCHES},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
