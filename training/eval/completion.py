"""Measure image completion on the shapes world: whether completions follow the prompt in the part
they regenerate, against the same prompts drawn from text alone.

Each case is a world scene of two objects, one above the other, whose top object lies wholly in
the top `keep_rows` rows of the image grid (so the bottom one lies wholly below them). The input is
that top object rendered alone; the pack's encoder turns it into codes, the top rows' codes are
forced in every candidate (sample_loop's `keep`, packs/CONTRACT.md) and the prompt asks for both
objects ("a small red circle above a large blue square", the world's canonical caption). The
oracle then reads each candidate and counts, over all candidates and in CLIP's top n:

- second object: the regenerated rows show the object asked for below (colour and shape, centred
  below the kept rows);
- kept object: the kept rows still show the input's object (colour and shape, centred in them);
- whole prompt: training.eval.evaluate's two-object check (both objects, sizes, the relation).

The same prompts with nothing kept (text only, the same uniforms) are measured in the same run,
with the same checks, as the baseline. Sampling is evaluate.py's: the pack's weights in PyTorch
and the contract's sampling rule.

Usage: python3 -m training.eval.completion packs/demo-shapes [--prompts 16] [--candidates 128]
           [--top 16] [--keep-rows 4] [--out FILE]
"""
import argparse
import json
import os
import time

import numpy as np
import torch

from training.eval.evaluate import EVAL_SEED, Scorer
from training.model.configs import pad_text
from training.model.sampling import sample_images
from training.model.train import decode_codes, to_pixels
from training.pack.weights import load_pack
from training.world import oracle
from training.world import shapes as world
from training.world.bpe import Tokenizer

# Apart from evaluate.py's seeds (EVAL_SEED + 0, 1 for zero-shot, + 2 for its prompts).
CASE_SEED = EVAL_SEED + 3
MODES = ("completion", "text only")
MEASURES = {"second": "regenerated part shows the second object (colour + shape)",
            "kept": "kept rows still show the kept object (colour + shape)",
            "whole": "whole prompt (both objects, sizes, relation; evaluate.py's check)"}


class Case:
    """A prompt for two objects, the top one kept: `scene` is what the prompt says, `kept` the input."""

    def __init__(self, scene, keep_pixels):
        self.scene, self.keep_pixels = scene, keep_pixels
        self.top, self.bottom = scene.objects
        self.kept = world.Scene((self.top,), None)
        self.text = world.canonical_caption(scene)


def cases(count, keep_pixels, seed=CASE_SEED):
    """Two-object train-split scenes with one object above the other, the top one inside the kept
    rows; a scene drawn with `below` is the same picture said the other way round."""
    rng = np.random.default_rng(seed)
    found = []
    while len(found) < count:
        scene = world.sample_scene(rng, "train", 2)
        if scene.relation == "below":
            scene = world.Scene(scene.objects[::-1], "above")
        if scene.relation != "above":
            continue
        top = scene.objects[0]
        if top.cy + top.side / 2 <= keep_pixels:
            found.append(Case(scene, keep_pixels))
    return found


def shows(reads, obj, rows):
    """Whether an object read from an image has `obj`'s colour and shape and its centre in `rows`."""
    return any(r.colour == obj.colour and r.shape == obj.shape and rows.start <= r.cy < rows.stop for r in reads)


def judge(image, case):
    """{measure: bool} for one image of a case."""
    reads = oracle.read_objects(image)
    size = image.shape[0]
    return {"second": shows(reads, case.bottom, range(case.keep_pixels, size)),
            "kept": shows(reads, case.top, range(0, case.keep_pixels)),
            "whole": oracle.judge(image, case.scene)}


def kept_tokens(vqvae, image, keep_rows, grid):
    """[N] int64: the encoder's codes of `image` in the top `keep_rows` grid rows, -1 (sample) below,
    as the service builds `keep` (src/models/encoder.ts)."""
    with torch.no_grad():
        codes = vqvae.encode(to_pixels(image[None], "cpu"))[0]
    keep = torch.full_like(codes, -1)
    keep[:keep_rows * grid] = codes[:keep_rows * grid]
    return keep, codes


def sample(models, text, candidates, seed, keep=None):
    """`candidates` images of `text` (tokens [B, N] and uint8 pixels), `keep` [N] forced in each."""
    manifest, generator, vqvae, _, tokenizer = models
    ids = torch.tensor([pad_text(tokenizer.encode(text), manifest["geometry"]["text_length"])] * candidates)
    uniforms = torch.rand(candidates, generator.config.image_tokens, generator=torch.Generator().manual_seed(seed))
    defaults = manifest["generator"]["sampling_defaults"]
    forced = None if keep is None else keep.unsqueeze(0).expand(candidates, -1)
    tokens = sample_images(generator, ids, uniforms, defaults["top_k"], defaults["temperature"],
                           defaults.get("top_p", 1.0), keep=forced)
    return tokens, decode_codes(vqvae, tokens, "cpu")


def measure(models, case, candidates, top, seed, keep):
    """Per measure, the share of all candidates and of CLIP's top `top` that pass, and the tokens."""
    scorer = models[3]
    tokens, images = sample(models, case.text, candidates, seed, keep)
    verdicts = [judge(image, case) for image in images]
    scores = (scorer.images(images) @ scorer.text([case.text]).t()).squeeze(1)
    best = scores.topk(top).indices.numpy()
    row = {}
    for name in MEASURES:
        passed = np.array([v[name] for v in verdicts])
        row[name] = {"all": float(passed.mean()), "top": float(passed[best].mean())}
    return row, tokens


def evaluate(pack_dir, prompts, candidates, top, keep_rows=None, log=print, threads=None):
    # One thread is much faster on a busy host: these models are small and a pool spins against other processes.
    torch.set_num_threads(threads or int(os.environ.get("EVAL_THREADS", "2")))
    began = time.time()
    manifest, generator, vqvae, clip, missing = load_pack(pack_dir)
    if "encoder" not in manifest:
        raise SystemExit(f"{pack_dir}: the pack has no encoder, so it cannot complete images")
    if missing:
        raise SystemExit(f"{pack_dir}: weights not found in the graphs: {missing}")
    tokenizer = Tokenizer.load(os.path.join(pack_dir, manifest["generator"]["tokenizer"]))
    models = (manifest, generator, vqvae, Scorer(clip, manifest, tokenizer), tokenizer)
    grid = manifest["geometry"]["image_grid"][0]
    size = manifest["geometry"]["image_size"][0]
    keep_rows = grid // 2 if keep_rows is None else keep_rows
    keep_pixels = keep_rows * size // grid
    result = {"pack": manifest["name"], "candidates": candidates, "top": top, "keep_rows": keep_rows,
              "grid": grid, "prompts": [], "kept_tokens_forced": True}
    for i, case in enumerate(cases(prompts, keep_pixels)):
        image = world.render(case.kept)
        keep, codes = kept_tokens(vqvae, image, keep_rows, grid)
        # The ceiling the codebook sets: the input and the whole scene through encode -> decode.
        with torch.no_grad():
            whole_codes = vqvae.encode(to_pixels(world.render(case.scene)[None], "cpu"))
        round_trip = {"kept": judge(decode_codes(vqvae, codes[None], "cpu")[0], case)["kept"],
                      "whole": judge(decode_codes(vqvae, whole_codes, "cpu")[0], case)["whole"]}
        entry = {"prompt": case.text, "round_trip": round_trip}
        for mode in MODES:
            forced = keep if mode == "completion" else None
            entry[mode], tokens = measure(models, case, candidates, top, EVAL_SEED + i, forced)
            if forced is not None:
                n = keep_rows * grid
                result["kept_tokens_forced"] &= bool((tokens[:, :n] == codes[:n]).all())
        result["prompts"].append(entry)
        log(json.dumps({"prompt": case.text, **{m: {k: v["top"] for k, v in entry[m].items()} for m in MODES}}))
    for mode in MODES:
        result[mode] = {name: {part: float(np.mean([p[mode][name][part] for p in result["prompts"]]))
                               for part in ("all", "top")} for name in MEASURES}
    result["round_trip"] = {name: float(np.mean([p["round_trip"][name] for p in result["prompts"]]))
                            for name in ("kept", "whole")}
    result["minutes"] = round((time.time() - began) / 60, 1)
    return result


def markdown(result):
    n, top, count = result["candidates"], result["top"], len(result["prompts"])
    header = " | ".join(f"{mode}: all {n} | {mode}: CLIP top {top}" for mode in MODES)
    lines = [f"| {count} prompts, top {result['keep_rows']} of {result['grid']} rows kept | {header} |",
             "| --- |" + " --- | --- |" * len(MODES)]
    for name, what in MEASURES.items():
        cells = " | ".join(f"{result[mode][name]['all']:.1%} | {result[mode][name]['top']:.1%}" for mode in MODES)
        lines.append(f"| {what} | {cells} |")
    trip = result["round_trip"]
    lines += ["", f"Input through encode → decode: kept object read back {trip['kept']:.1%}, "
              f"the whole two-object scene {trip['whole']:.1%}. Kept tokens equal to the encoder's codes in "
              f"every completion: {'yes' if result['kept_tokens_forced'] else 'NO'}. {result['minutes']} minutes."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pack")
    parser.add_argument("--prompts", type=int, default=16, help="cases; the first k are the same whatever the count")
    parser.add_argument("--candidates", type=int, default=128)
    parser.add_argument("--top", type=int, default=16)
    parser.add_argument("--keep-rows", type=int, default=None, help="grid rows kept; default half the grid")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = evaluate(args.pack, args.prompts, args.candidates, args.top, args.keep_rows)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    print(markdown(result))


if __name__ == "__main__":
    main()
