"""Upstream's own answers on the checkpoints of make_upstream_checkpoints.py, as numbers.

Runs Kakao Brain's minDALL-E modules (`Transformer1d.sampling`, `VQGAN.decode_code`) and OpenAI's
`dall_e` decoder (loaded from the pickle with upstream's classes) from their source folders, which
are read, never copied here. Needs no package beyond torch and yaml: `omegaconf` and `einops`,
which those modules import but never call on these paths, get inert stand-ins.

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


class AttrDict(dict):
    __getattr__ = dict.__getitem__


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
    einops.rearrange = lambda *a, **k: (_ for _ in ()).throw(NotImplementedError("einops stand-in"))
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
    utils = importlib.import_module("dall_e.utils")
    return vqgan.VQGAN, transformer.Transformer1d, utils.unmap_pixels


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


def vqgan_pixels(VQGAN, config, stage1_path, codes):
    s1 = config["stage1"]
    model = VQGAN(s1["n_embed"], s1["embed_dim"], AttrDict(s1["hparams"])).eval()
    state = torch.load(stage1_path, map_location="cpu")["state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert all(k.startswith(("encoder.", "quant_conv.")) for k in missing + unexpected), (missing, unexpected)
    grid = model.latent_dim
    with torch.no_grad():
        pixels = torch.clamp(model.decode_code(codes.view(-1, grid, grid)) * 0.5 + 0.5, 0, 1)
    return (pixels * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def dvae_pixels(unmap_pixels, decoder_path, codes):
    model = torch.load(decoder_path, map_location="cpu")  # upstream's own classes read the pickle
    grid = int(round(codes.shape[1] ** 0.5))
    one_hot = F.one_hot(codes.view(-1, grid, grid), model.vocab_size).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        pixels = unmap_pixels(torch.sigmoid(model(one_hot)[:, :3]))
    return (pixels * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


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
    VQGAN, Transformer1d, unmap_pixels = import_upstream(args.mindalle_src, args.dalle_src)
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
    dvae_codes = torch.randint(0, torch.load(dvae_path, map_location="cpu").vocab_size,
                               (2, 16 if image_tokens == 16 else 1024), generator=generator)
    fixture = {
        "about": "upstream's answers on the checkpoints of training/tests/make_upstream_checkpoints.py",
        "digests": {name: state_digest(os.path.join(args.checkpoints, *name.split("/"))) for name in
                    ("mindalle/stage1_last.ckpt", "mindalle/stage2_last.ckpt", "dvae/decoder.pkl")},
        "prompts": PROMPTS,
        "token_ids": ids,
        "text_tokens_rows": [0, 1],
        "image_path": path.tolist(),
        **gpt_outputs(Transformer1d, config, os.path.join(root, "stage2_last.ckpt"), texts, path),
        "decoder_pixels": b64(vqgan_pixels(VQGAN, config, os.path.join(root, "stage1_last.ckpt"), path)),
        "dvae_codes": dvae_codes.tolist(),
        "dvae_pixels": b64(dvae_pixels(unmap_pixels, dvae_path, dvae_codes)),
    }
    with open(args.out, "w") as f:
        json.dump(fixture, f)


if __name__ == "__main__":
    main()
