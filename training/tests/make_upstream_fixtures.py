"""Upstream's own answers on the checkpoints of make_upstream_checkpoints.py, as numbers.

Runs Kakao Brain's minDALL-E modules (`Transformer1d.sampling`, `VQGAN.decode_code`,
`VQGAN.get_codes`) and OpenAI's `dall_e` decoder and encoder (loaded from the pickles with
upstream's classes) from their source folders, which are read, never copied here. Needs no package
beyond torch, yaml and attr: `omegaconf`, which those modules import but never call on these paths,
gets an inert stand-in; `einops.rearrange`, which the VQGAN's quantizer calls to move axes, a
stand-in that moves axes and refuses any other pattern.

    /usr/bin/python3 -m training.tests.make_upstream_fixtures CHECKPOINTS OUT.json \\
        --mindalle-src minDALL-E --dalle-src DALL-E

The tokenizer ids come from training.mindalle_tokenizer.reference_encode: the `tokenizers` library
upstream calls is not installed here (see that module).
"""
import argparse
import base64
import importlib
import json
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from training.tests.make_upstream_checkpoints import state_digest
from training.upstream import mindalle_tokenizer as tok

PROMPTS = [
    "a painting of a red apple on the table",
    "An Oil Painting of the SEA at night!",
    "a photo of a cat wearing sunglasses, 1990.",
    "bird's-eye view: the city; (at dawn) -- 100% \"real\"?",
    "café crème brûlée, naïve art",
    "a 猫 and a 狗 in the snow 🎨",
    "tabs\tand\nnewlines   and\u00a0spaces\u200b here",
    "control\x07chars\x00gone",
    " ".join(["the quick brown fox jumps over the lazy dog"] * 6),
    "",
]
STEPS = 5
# Images encoded: few, as the fixture stores their pixels (the dVAE's are a quarter the size).
ENCODED_IMAGES = {"vqgan": 2, "dvae": 3}


class AttrDict(dict):
    __getattr__ = dict.__getitem__


def rearrange(tensor, pattern):
    """einops.rearrange for a pure reordering of named axes ('b c h w -> b h w c'), what
    minDALL-E's VectorQuantizer asks of it; any other pattern is refused."""
    before, after = (side.split() for side in pattern.split("->"))
    if sorted(before) != sorted(after) or len(set(before)) != len(before) or not all(n.isidentifier() for n in before):
        raise NotImplementedError(f"einops stand-in: {pattern!r} is not a reordering of axes")
    return tensor.permute(*[before.index(n) for n in after])


def _package(name, path=None):
    module = types.ModuleType(name)
    if path:
        module.__path__ = [path]
    return module


def import_upstream(mindalle_src, dalle_src):
    """Upstream's modules, without running their packages' __init__ (which download or import
    training frameworks)."""
    omegaconf = _package("omegaconf")
    omegaconf.OmegaConf = AttrDict
    einops = _package("einops")
    einops.rearrange = rearrange
    sys.modules.update({
        "omegaconf": omegaconf, "einops": einops,
        "dalle": _package("dalle", os.path.join(mindalle_src, "dalle")),
        "dalle.models": _package("dalle.models", os.path.join(mindalle_src, "dalle", "models")),
        "dall_e": _package("dall_e", os.path.join(dalle_src, "dall_e")),
    })
    # By name: the packages above point at the folders given on the command line.
    vqgan = importlib.import_module("dalle.models.stage1.vqgan")
    transformer = importlib.import_module("dalle.models.stage2.transformer")
    importlib.import_module("dall_e.decoder")  # torch.load finds the classes by name
    importlib.import_module("dall_e.encoder")
    utils = importlib.import_module("dall_e.utils")
    return vqgan.VQGAN, transformer.Transformer1d, utils


def rounded(t, digits=5):
    return [round(float(x), digits) for x in t.flatten().tolist()]


def gpt_outputs(Transformer1d, config, stage2_path, texts, path):
    hp = AttrDict(config["stage2"]["hparams"])
    model = Transformer1d(config["stage2"]["vocab_size_txt"], config["stage2"]["vocab_size_img"], hp).eval()
    model.from_ckpt(stage2_path)
    pos_texts = torch.arange(texts.shape[1]).repeat(texts.shape[0], 1)
    logits, present = model.sampling(None, texts, None, pos_texts, use_fp16=False)
    out = {"prefill_logits": rounded(logits), "step_logits": []}
    past = [torch.stack(present)]
    for k in range(STEPS):
        code = path[:, k:k + 1]
        pos = torch.full_like(code, k)
        logits, present = model.sampling(code, texts, pos, pos_texts, use_fp16=False, past=past)
        past.append(torch.stack(present))
        out["step_logits"].append(rounded(logits))
    return out


def load_vqgan(VQGAN, config, stage1_path):
    s1 = config["stage1"]
    model = VQGAN(s1["n_embed"], s1["embed_dim"], AttrDict(s1["hparams"])).eval()
    model.load_state_dict(torch.load(stage1_path, map_location="cpu")["state_dict"])  # strict, as from_ckpt
    return model


def vqgan_pixels(model, codes):
    grid = model.latent_dim
    with torch.no_grad():
        pixels = torch.clamp(model.decode_code(codes.view(-1, grid, grid)) * 0.5 + 0.5, 0, 1)
    return (pixels * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def sample_images(count, size, seed):
    """uint8 [count, size, size, 3]: a colour gradient with a disc and a box of flat colours and
    some noise, so that cells differ and edges cross them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    images = []
    for _ in range(count):
        corners = rng.uniform(0, 255, (2, 3))
        image = corners[0] * (1 - (xx + yy)[..., None] / 2) + corners[1] * ((xx + yy)[..., None] / 2)
        cx, cy, r = rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.15, 0.3)
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2] = rng.uniform(0, 255, 3)
        x0, y0 = rng.uniform(0, 0.6, 2)
        image[(xx > x0) & (xx < x0 + 0.35) & (yy > y0) & (yy < y0 + 0.25)] = rng.uniform(0, 255, 3)
        images.append(image + rng.normal(0, 8, image.shape))
    return torch.from_numpy(np.clip(np.round(np.stack(images)), 0, 255).astype(np.uint8))


def vqgan_codes(model, images):
    """`VQGAN.get_codes` on the images as minDALL-E's examples prepare them: ToTensor (0 to 1),
    then Normalize(mean 0.5, std 0.5); and the smallest gap between a cell's nearest two codes."""
    x = images.permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)
    with torch.no_grad():
        codes = model.get_codes(x)
        z = model.quant_conv(model.encoder(x)).permute(0, 2, 3, 1).reshape(-1, model.quantize.dim)
        distances = torch.cdist(z, model.quantize.embedding.weight) ** 2
    return codes, float((distances.topk(2, largest=False).values.diff(dim=1)).min())


def dvae_pixels(utils, decoder_path, codes):
    model = torch.load(decoder_path, map_location="cpu")  # upstream's own classes read the pickle
    grid = int(round(codes.shape[1] ** 0.5))
    one_hot = F.one_hot(codes.view(-1, grid, grid), model.vocab_size).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        pixels = utils.unmap_pixels(torch.sigmoid(model(one_hot)[:, :3]))
    return (pixels * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def dvae_codes(utils, encoder_path, images):
    """As DALL·E 1's usage: `argmax(enc(map_pixels(x)), axis=1)` on pixels scaled 0 to 1; and the
    smallest gap between a cell's two largest logits."""
    model = torch.load(encoder_path, map_location="cpu")
    with torch.no_grad():
        logits = model(utils.map_pixels(images.permute(0, 3, 1, 2).float() / 255))
    top = logits.topk(2, dim=1).values
    return torch.argmax(logits, axis=1).flatten(1), float((top[:, 0] - top[:, 1]).min())


def b64(pixels):
    return {"shape": list(pixels.shape), "base64": base64.b64encode(pixels.contiguous().numpy().tobytes()).decode()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints")
    parser.add_argument("out")
    parser.add_argument("--mindalle-src", required=True)
    parser.add_argument("--dalle-src", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    VQGAN, Transformer1d, utils = import_upstream(args.mindalle_src, args.dalle_src)
    root = os.path.join(args.checkpoints, "mindalle")
    with open(os.path.join(root, "config.yaml")) as f:
        config = yaml.safe_load(f)
    vocab = tok.read_vocab(os.path.join(root, "tokenizer", "bpe-16k-vocab.json"))
    merges = tok.read_merges(os.path.join(root, "tokenizer", "bpe-16k-merges.txt"))
    text_length = config["stage2"]["hparams"]["ctx_len_txt"]
    ids = [tok.reference_encode(p, vocab, merges, text_length) for p in PROMPTS]
    texts = torch.tensor(ids[:2])
    codebook = config["stage1"]["n_embed"]
    image_tokens = config["stage2"]["hparams"]["ctx_len_img"]
    generator = torch.Generator().manual_seed(7)
    path = torch.randint(0, codebook, (2, image_tokens), generator=generator)
    dvae_path = os.path.join(args.checkpoints, "dvae", "decoder.pkl")
    dvae_grid = 4 if image_tokens == 16 else 32
    random_codes = torch.randint(0, torch.load(dvae_path, map_location="cpu").vocab_size,
                                 (2, dvae_grid ** 2), generator=generator)
    vqgan = load_vqgan(VQGAN, config, os.path.join(root, "stage1_last.ckpt"))
    resolution = config["stage1"]["hparams"]["resolution"]
    images = sample_images(ENCODED_IMAGES["vqgan"], resolution, 11)
    dvae_images = sample_images(ENCODED_IMAGES["dvae"], dvae_grid * 8, 12)  # the dVAE encoder pools 3 times
    codes, gap = vqgan_codes(vqgan, images)
    dvae_encoded, dvae_gap = dvae_codes(utils, os.path.join(args.checkpoints, "dvae", "encoder.pkl"), dvae_images)
    # How far each cell's answer is from a tie: the exports must agree however close it is, and
    # these say how much arithmetic noise that tolerates.
    print(json.dumps({"vqgan_nearest_two_min_gap": gap, "dvae_top_two_logits_min_gap": dvae_gap,
                      "distinct_codes": [len(codes.unique()), len(dvae_encoded.unique())]}))
    fixture = {
        "about": "upstream's answers on the checkpoints of training/tests/make_upstream_checkpoints.py",
        "digests": {name: state_digest(os.path.join(args.checkpoints, *name.split("/"))) for name in
                    ("mindalle/stage1_last.ckpt", "mindalle/stage2_last.ckpt", "dvae/decoder.pkl",
                     "dvae/encoder.pkl")},
        "prompts": PROMPTS,
        "token_ids": ids,
        "text_tokens_rows": [0, 1],
        "image_path": path.tolist(),
        **gpt_outputs(Transformer1d, config, os.path.join(root, "stage2_last.ckpt"), texts, path),
        "decoder_pixels": b64(vqgan_pixels(vqgan, path)),
        "encoder_images": b64(images),
        "encoder_codes": codes.tolist(),
        "dvae_codes": random_codes.tolist(),
        "dvae_pixels": b64(dvae_pixels(utils, dvae_path, random_codes)),
        "dvae_encoder_images": b64(dvae_images),
        "dvae_encoder_codes": dvae_encoded.tolist(),
    }
    with open(args.out, "w") as f:
        json.dump(fixture, f)


if __name__ == "__main__":
    main()
