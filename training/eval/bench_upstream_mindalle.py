"""Kakao Brain's own minDALL-E sampling timed on a release, for the engine's figures beside it.

    PYTHONPATH=. /usr/bin/python3 -m training.eval.bench_upstream_mindalle --mindalle-src minDALL-E \\
        --checkpoint RELEASE/mindalle [--rows 1,4,16,32] [--threads 2] [--prompt TEXT]

Builds upstream's stage-2 `Transformer1d` from the release's config.yaml, loads stage2_last.ckpt
with its own `from_ckpt`, and times its own `dalle.utils.sampling.sampling` (top-k 256, temperature
1, float32, its own key/value cache) on the prompt repeated once per row, as `Dalle.sampling`
repeats it: one run per row count, seconds per candidate. Stage 2 only: no VQGAN decode, no CLIP.
Upstream's modules are imported from `--mindalle-src`, never copied here, with
make_upstream_fixtures' stand-in for `omegaconf` and a pass-through `tqdm` (not installed here;
`is_tqdm=False` never calls it). The prompt's ids come from training.upstream.mindalle_tokenizer
on the release's tokenizer files, the ids the pack's tokenizer gives (test/training pins them).
Prints one JSON object.
"""
import argparse
import contextlib
import importlib
import json
import os
import resource
import sys
import time

import torch
import yaml

from training.tests.make_upstream_fixtures import AttrDict, _package
from training.upstream import mindalle_tokenizer as tok

PROMPT = "a painting of a red apple on the table"
# Upstream's sampling defaults (dalle/models/__init__.py, Dalle.sampling).
TOP_K, TEMPERATURE = 256, 1.0


def import_stage2(mindalle_src):
    """(Transformer1d, sampling) from upstream's folder, without its packages' __init__ (which
    imports pytorch_lightning and the tokenizers library)."""
    omegaconf = _package("omegaconf")
    omegaconf.OmegaConf = AttrDict
    tqdm = _package("tqdm")
    tqdm.tqdm = lambda iterable, **_: iterable
    sys.modules.update({
        "omegaconf": omegaconf, "tqdm": tqdm,
        "dalle": _package("dalle", os.path.join(mindalle_src, "dalle")),
        "dalle.models": _package("dalle.models", os.path.join(mindalle_src, "dalle", "models")),
        "dalle.utils": _package("dalle.utils", os.path.join(mindalle_src, "dalle", "utils")),
    })
    transformer = importlib.import_module("dalle.models.stage2.transformer")
    return transformer.Transformer1d, importlib.import_module("dalle.utils.sampling").sampling


def peak_rss_gib():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 2)


def main():
    parser = argparse.ArgumentParser(description="Time upstream minDALL-E's stage-2 sampling per candidate.")
    parser.add_argument("--mindalle-src", required=True, help="a checkout of github.com/kakaobrain/minDALL-E")
    parser.add_argument("--checkpoint", required=True, help="the release folder (config.yaml, stage2_last.ckpt)")
    parser.add_argument("--rows", default="1,4,16,32", help="candidates sampled together, one run each")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--prompt", default=PROMPT)
    args = parser.parse_args()
    if not os.path.isdir(os.path.join(args.mindalle_src, "dalle")):
        raise SystemExit(f"{args.mindalle_src} is not a minDALL-E checkout (no dalle/ in it)")
    torch.set_num_threads(args.threads)
    Transformer1d, sampling = import_stage2(args.mindalle_src)
    with open(os.path.join(args.checkpoint, "config.yaml")) as f:
        config = yaml.safe_load(f)["stage2"]
    hparams = AttrDict(config["hparams"])
    vocab = tok.read_vocab(os.path.join(args.checkpoint, "tokenizer", "bpe-16k-vocab.json"))
    merges = tok.read_merges(os.path.join(args.checkpoint, "tokenizer", "bpe-16k-merges.txt"))
    ids = torch.LongTensor(tok.reference_encode(args.prompt, vocab, merges, hparams.ctx_len_txt))

    started = time.perf_counter()
    model = Transformer1d(config["vocab_size_txt"], config["vocab_size_img"], hparams).eval()
    with contextlib.redirect_stdout(sys.stderr):  # from_ckpt prints that it restored the file
        model.from_ckpt(os.path.join(args.checkpoint, "stage2_last.ckpt"))
    load_s = time.perf_counter() - started
    after_load = peak_rss_gib()

    runs = []
    for rows in [int(r) for r in args.rows.split(",")]:
        tokens = torch.repeat_interleave(ids.unsqueeze(0), rows, dim=0)
        torch.manual_seed(1)
        started = time.perf_counter()
        codes = sampling(model, tokens, top_k=TOP_K, softmax_temperature=TEMPERATURE, is_tqdm=False, use_fp16=False,
                         max_seq_len=hparams.ctx_len_img)
        seconds = time.perf_counter() - started
        assert codes.shape == (rows, hparams.ctx_len_img), codes.shape
        runs.append({"rows": rows, "sample_s": round(seconds, 2), "per_candidate_s": round(seconds / rows, 3),
                     "peak_rss_gib": peak_rss_gib()})
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    print(json.dumps({
        "code": f"Kakao Brain minDALL-E from {os.path.abspath(args.mindalle_src)}: Transformer1d.from_ckpt, "
                f"dalle.utils.sampling.sampling(top_k={TOP_K}, softmax_temperature={TEMPERATURE}, use_fp16=False)",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        # torch's matrix products run in OpenBLAS, with threads of its own (bench/mindalle-full.sh sets 1).
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "OpenBLAS's default"),
        "prompt": args.prompt, "prompt_ids": "training.upstream.mindalle_tokenizer (the pack's tokenizer's ids)",
        "layers": hparams.n_layers, "width": hparams.embed_dim,
        "load_s": round(load_s, 1), "peak_rss_gib_after_load": after_load, "rows": runs,
    }))


if __name__ == "__main__":
    main()
