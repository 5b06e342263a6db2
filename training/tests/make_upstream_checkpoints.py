"""Seeded random checkpoints in the upstream files' layouts, for the exporters' checks.

Writes into OUT:
- `mindalle/`: minDALL-E's release layout — `config.yaml`, `stage1_last.ckpt` (VQGAN: encoder,
  quant conv, codebook, post-quant conv, decoder) and `stage2_last.ckpt` (GPT), each
  `{"state_dict": …}` under upstream's parameter names, and `tokenizer/bpe-16k-vocab.json` +
  `bpe-16k-merges.txt` (CharBPE files learned from a few lines);
- `dvae/decoder.pkl` and `dvae/encoder.pkl`: whole pickled modules naming `dall_e.decoder.Decoder`,
  `dall_e.decoder.DecoderBlock`, `dall_e.encoder.Encoder`, `dall_e.encoder.EncoderBlock` and
  `dall_e.utils.Conv2d` with the attributes OpenAI's classes have, as OpenAI's files are
  (upstream's `torch.load` reads them into their real classes);
- `dvae-dalle1/decoder.pkl` and `encoder.pkl` with `--with-dalle1-dvae`: a narrow dVAE on DALL·E 1's
  geometry, for `training.export.dvae_decoder --base packs/micro-dalle1`.
The OpenAI CLIP that minDALL-E reranks with comes from make_openai_clip_case.py --checkpoint-only.

    /usr/bin/python3 -m training.tests.make_upstream_checkpoints OUT [--size small|layer|full]

`small` (committed fixtures): GPT 2 layers, width 64, 4 heads, 64 text + 16 image tokens,
256 codes; VQGAN with 32 channels at minDALL-E's f16 layout (64×64 pixels); dVAE with 512 codes
on a 4×4 grid (32×32 pixels). `layer`: one GPT layer at minDALL-E's width (1536, 24 heads, 16,384 + 16,384
vocabulary, 64 + 256 positions), minDALL-E's VQGAN and OpenAI's dVAE decoder and encoder at their real sizes.
`full`: as `layer` with minDALL-E's 42 layers (1.3B parameters, a 5.3 GB stage-2 file; the tensors
are held once, about 5.5 GB of memory).
"""
import argparse
import collections
import hashlib
import json
import math
import os
import sys
import types

import torch
import torch.nn as nn

from training.upstream import safe_pickle
from training.upstream.dvae import DVAEEncoder
from training.upstream.mindalle import Stage1Decoder, Stage1Encoder

SIZES = {
    "small": {"gpt": dict(width=64, layers=2, heads=4, vocab_txt=256, vocab_img=256, ctx_txt=64, ctx_img=16),
              "vqgan": dict(embed_dim=16, n_embed=256, z_channels=32, resolution=64, ch=32),
              "dvae": dict(n_init=16, n_hid=64, n_blk_per_group=1, vocab_size=512, grid=4)},
    "layer": {"gpt": dict(width=1536, layers=1, heads=24, vocab_txt=16384, vocab_img=16384, ctx_txt=64, ctx_img=256),
              "vqgan": dict(embed_dim=256, n_embed=16384, z_channels=256, resolution=256, ch=128),
              "dvae": dict(n_init=128, n_hid=256, n_blk_per_group=2, vocab_size=8192, grid=32)},
}
# minDALL-E 1.3B's own geometry (42 layers), for the full-size measurement (bench/mindalle-full.sh).
SIZES["full"] = {**SIZES["layer"], "gpt": {**SIZES["layer"]["gpt"], "layers": 42}}
# A narrow dVAE decoder on DALL·E 1's real geometry (8,192 codes, 32×32 → 256×256), to pair with
# packs/micro-dalle1's generator.
DALLE1_DVAE = dict(n_init=16, n_hid=64, n_blk_per_group=1, vocab_size=8192, grid=32)
CH_MULT, NUM_RES_BLOCKS, ATTN_RESOLUTIONS = [1, 1, 2, 2, 4], 2, [16]
CORPUS = """a painting of a red apple on the table. an oil painting of the sea at night.
a photo of a cat wearing sunglasses, 1990. the quick brown fox jumps over the lazy dog!
a watercolor of mountains and a small house; a bird's eye view of the city."""
MERGES = 120


# --- minDALL-E ---

def learn_char_bpe(text, count):
    """CharBPE files: single characters (plain and word-final) first, then merged pairs."""
    words = collections.Counter()
    for line in text.lower().split("\n"):
        for word in line.replace(".", " . ").replace(",", " , ").replace("!", " ! ").replace(";", " ; ").split():
            words[tuple(word[:-1]) + (word[-1] + "</w>",)] += 1
    alphabet = sorted({s for w in words for s in w})
    vocab = ["[UNK]"] + alphabet
    merges = []
    for _ in range(count):
        pairs = collections.Counter()
        for parts, n in words.items():
            for pair in zip(parts, parts[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]
        merges.append(best)
        vocab.append(best[0] + best[1])
        merged = collections.Counter()
        for parts, n in words.items():
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    out.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return {t: i for i, t in enumerate(dict.fromkeys(vocab))}, merges


def gpt_state(g, seed):
    torch.manual_seed(seed)
    w = g["width"]
    state = collections.OrderedDict()
    state["tok_emb_img.weight"] = torch.randn(g["vocab_img"], w) * 0.3
    state["tok_emb_txt.weight"] = torch.randn(g["vocab_txt"], w) * 0.3
    state["pos_emb_img.weight"] = torch.randn(g["ctx_img"], w) * 0.3
    state["pos_emb_txt.weight"] = torch.randn(g["ctx_txt"], w) * 0.3
    for i in range(g["layers"]):
        p = f"blocks.{i}."
        for ln in ("ln1", "ln2"):
            state[p + ln + ".weight"] = 1 + 0.1 * torch.randn(w)
            state[p + ln + ".bias"] = 0.1 * torch.randn(w)
        for name in ("key", "query", "value", "proj"):
            state[f"{p}attn.{name}.weight"] = torch.randn(w, w) / math.sqrt(w)
            state[f"{p}attn.{name}.bias"] = 0.1 * torch.randn(w)
        state[p + "mlp.0.weight"] = torch.randn(4 * w, w) / math.sqrt(w)
        state[p + "mlp.0.bias"] = 0.1 * torch.randn(4 * w)
        state[p + "mlp.2.weight"] = torch.randn(w, 4 * w) / math.sqrt(4 * w)
        state[p + "mlp.2.bias"] = 0.1 * torch.randn(w)
    state["ln_f.weight"] = 1 + 0.1 * torch.randn(w)
    state["ln_f.bias"] = 0.1 * torch.randn(w)
    state["head_img.weight"] = torch.randn(g["vocab_img"], w) / math.sqrt(w)
    state["head_txt.weight"] = torch.randn(g["vocab_txt"], w) / math.sqrt(w)
    return state


def vqgan_hparams(v):
    return {"double_z": False, "z_channels": v["z_channels"], "resolution": v["resolution"], "in_channels": 3,
            "out_ch": 3, "ch": v["ch"], "ch_mult": CH_MULT, "num_res_blocks": NUM_RES_BLOCKS,
            "attn_resolutions": ATTN_RESOLUTIONS if v["resolution"] == 256 else [v["resolution"] // 16],
            "pdrop": 0.0}


def _random_like(name, t):
    if ".norm" in name or "norm_out" in name:
        return (1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(t)
    if name.endswith("bias"):
        return 0.05 * torch.randn_like(t)
    if name == "quantize.embedding.weight":
        return torch.randn_like(t)
    return torch.randn_like(t) / math.sqrt(t[0].numel())  # by fan-in


def vqgan_state(v, seed):
    """Upstream's VQGAN names, every tensor upstream's VQGAN has, random values with GroupNorm
    affine parameters near identity so activations stay in range. The decoder's are drawn first
    (as before the encoder was exported), then the encoder's and the quant conv's."""
    torch.manual_seed(seed)
    hparams = vqgan_hparams(v)
    state = collections.OrderedDict()
    for name, t in Stage1Decoder(v["n_embed"], v["embed_dim"], hparams).state_dict().items():
        state[name] = _random_like(name, t)
    for name, t in Stage1Encoder(v["n_embed"], v["embed_dim"], hparams).state_dict().items():
        if name not in state:  # the codebook is shared
            state[name] = _random_like(name, t)
    return state


def config_yaml(g, v):
    return f"""stage1:
  type: vqgan
  embed_dim: {v['embed_dim']}
  n_embed: {v['n_embed']}
  hparams:
""" + "".join(f"    {k}: {json.dumps(val)}\n" for k, val in vqgan_hparams(v).items()) + f"""
stage2:
  type: transformer1d
  vocab_size_txt: {g['vocab_txt']}
  vocab_size_img: {g['vocab_img']}
  hparams:
    embed_dim: {g['width']}
    n_layers: {g['layers']}
    n_heads: {g['heads']}
    n_dense_layers: {g['layers']}
    ctx_len_img: {g['ctx_img']}
    ctx_len_txt: {g['ctx_txt']}
    embd_pdrop: 0.0
    resid_pdrop: 0.0
    attn_pdrop: 0.0
    mlp_bias: True
    attn_bias: True
    gelu_use_approx: False

dataset:
  tokenizer_type: CharBPE
  context_length: {g['ctx_txt']}
  image_resolution: {v['resolution']}
"""


def write_mindalle(out, size):
    g, v = SIZES[size]["gpt"], SIZES[size]["vqgan"]
    os.makedirs(os.path.join(out, "tokenizer"), exist_ok=True)
    vocab, merges = learn_char_bpe(CORPUS, MERGES)
    with open(os.path.join(out, "tokenizer", "bpe-16k-vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer", "bpe-16k-merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2 - Trained by `huggingface/tokenizers`\n" + "".join(f"{a} {b}\n" for a, b in merges))
    with open(os.path.join(out, "config.yaml"), "w") as f:
        f.write(config_yaml(g, v))
    torch.save({"state_dict": vqgan_state(v, 16)}, os.path.join(out, "stage1_last.ckpt"))
    torch.save({"state_dict": gpt_state(g, 1536)}, os.path.join(out, "stage2_last.ckpt"))


# --- OpenAI's dVAE decoder, pickled as their module is ---

def _fake_module(name, classes):
    module = types.ModuleType(name)
    for cls in classes:
        cls.__module__ = name
        setattr(module, cls.__name__, cls)
    return module


class Conv2d(nn.Module):
    def __init__(self, n_in, n_out, kw, use_float16=True):
        super().__init__()
        self.n_in, self.n_out, self.kw, self.use_float16 = n_in, n_out, kw, use_float16
        self.device, self.requires_grad = torch.device("cpu"), False
        w = torch.randn(n_out, n_in, kw, kw) / math.sqrt(n_in * kw ** 2)
        self.w, self.b = nn.Parameter(w), nn.Parameter(0.05 * torch.randn(n_out))


class DecoderBlock(nn.Module):
    def __init__(self, n_in, n_out, n_layers):
        super().__init__()
        self.n_in, self.n_out, self.n_layers = n_in, n_out, n_layers
        self.device, self.requires_grad = None, False
        self.n_hid, self.post_gain = n_out // 4, 1 / (n_layers ** 2)
        self.id_path = Conv2d(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        self.res_path = nn.Sequential(collections.OrderedDict([
            ("relu_1", nn.ReLU()), ("conv_1", Conv2d(n_in, self.n_hid, 1)),
            ("relu_2", nn.ReLU()), ("conv_2", Conv2d(self.n_hid, self.n_hid, 3)),
            ("relu_3", nn.ReLU()), ("conv_3", Conv2d(self.n_hid, self.n_hid, 3)),
            ("relu_4", nn.ReLU()), ("conv_4", Conv2d(self.n_hid, n_out, 3))]))


class Decoder(nn.Module):
    def __init__(self, n_init, n_hid, n_blk_per_group, vocab_size, output_channels=3):
        super().__init__()
        self.group_count, self.n_init, self.n_hid, self.n_blk_per_group = 4, n_init, n_hid, n_blk_per_group
        self.output_channels, self.vocab_size = output_channels, vocab_size
        self.device, self.requires_grad, self.use_mixed_precision = torch.device("cpu"), False, True
        n_layers = self.group_count * n_blk_per_group
        widths = [n_init, 8 * n_hid, 4 * n_hid, 2 * n_hid, n_hid]
        groups = [("input", Conv2d(vocab_size, n_init, 1, use_float16=False))]
        for g in range(4):
            blocks = [(f"block_{i + 1}", DecoderBlock(widths[g] if i == 0 else widths[g + 1], widths[g + 1], n_layers))
                      for i in range(n_blk_per_group)]
            if g < 3:
                blocks.append(("upsample", nn.Upsample(scale_factor=2, mode="nearest")))
            groups.append((f"group_{g + 1}", nn.Sequential(collections.OrderedDict(blocks))))
        groups.append(("output", nn.Sequential(collections.OrderedDict([
            ("relu", nn.ReLU()), ("conv", Conv2d(n_hid, 2 * output_channels, 1))]))))
        self.blocks = nn.Sequential(collections.OrderedDict(groups))


class EncoderBlock(nn.Module):
    def __init__(self, n_in, n_out, n_layers):
        super().__init__()
        self.n_in, self.n_out, self.n_layers = n_in, n_out, n_layers
        self.device, self.requires_grad = torch.device("cpu"), False
        self.n_hid, self.post_gain = n_out // 4, 1 / (n_layers ** 2)
        self.id_path = Conv2d(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        self.res_path = nn.Sequential(collections.OrderedDict([
            ("relu_1", nn.ReLU()), ("conv_1", Conv2d(n_in, self.n_hid, 3)),
            ("relu_2", nn.ReLU()), ("conv_2", Conv2d(self.n_hid, self.n_hid, 3)),
            ("relu_3", nn.ReLU()), ("conv_3", Conv2d(self.n_hid, self.n_hid, 3)),
            ("relu_4", nn.ReLU()), ("conv_4", Conv2d(self.n_hid, n_out, 1))]))


class Encoder(nn.Module):
    def __init__(self, n_hid, n_blk_per_group, vocab_size, input_channels=3):
        super().__init__()
        self.group_count, self.n_hid, self.n_blk_per_group = 4, n_hid, n_blk_per_group
        self.input_channels, self.vocab_size = input_channels, vocab_size
        self.device, self.requires_grad, self.use_mixed_precision = torch.device("cpu"), False, True
        n_layers = self.group_count * n_blk_per_group
        widths = [n_hid, n_hid, 2 * n_hid, 4 * n_hid, 8 * n_hid]
        groups = [("input", Conv2d(input_channels, n_hid, 7))]
        for g in range(4):
            blocks = [(f"block_{i + 1}", EncoderBlock(widths[g] if i == 0 else widths[g + 1], widths[g + 1], n_layers))
                      for i in range(n_blk_per_group)]
            if g < 3:
                blocks.append(("pool", nn.MaxPool2d(kernel_size=2)))
            groups.append((f"group_{g + 1}", nn.Sequential(collections.OrderedDict(blocks))))
        groups.append(("output", nn.Sequential(collections.OrderedDict([
            ("relu", nn.ReLU()), ("conv", Conv2d(8 * n_hid, vocab_size, 1, use_float16=False))]))))
        self.blocks = nn.Sequential(collections.OrderedDict(groups))


def center_code_logits(encoder):
    """Random weights give every cell nearly the same logits, one code winning almost everywhere
    (the activations' mean, the same in every cell, dominates). Each code's output bias is moved so
    that its logit on a mid-grey image is 0: then the image decides the code, as in a trained encoder."""
    grey = torch.full((1, 64, 64, 3), 128, dtype=torch.uint8)
    with torch.no_grad():
        # In float64, so that the bias's float32 bits do not depend on how many threads summed it.
        logits = DVAEEncoder(encoder.state_dict(), image_size=64).double().logits(grey)
        encoder.blocks.output.conv.b -= logits.mean(dim=(0, 2, 3)).float()


def write_dvae(out, size, seed=8192, encoder_seed=8193):
    d = DALLE1_DVAE if size == "dalle1" else SIZES[size]["dvae"]
    fakes = {"dall_e": types.ModuleType("dall_e"), "dall_e.utils": _fake_module("dall_e.utils", [Conv2d]),
             "dall_e.decoder": _fake_module("dall_e.decoder", [DecoderBlock, Decoder]),
             "dall_e.encoder": _fake_module("dall_e.encoder", [EncoderBlock, Encoder])}
    saved = {name: sys.modules.get(name) for name in fakes}
    sys.modules.update(fakes)
    try:
        torch.manual_seed(seed)
        model = Decoder(d["n_init"], d["n_hid"], d["n_blk_per_group"], d["vocab_size"])
        os.makedirs(out, exist_ok=True)
        torch.save(model, os.path.join(out, "decoder.pkl"))
        torch.manual_seed(encoder_seed)
        encoder = Encoder(d["n_hid"], d["n_blk_per_group"], d["vocab_size"])
        center_code_logits(encoder)
        torch.save(encoder, os.path.join(out, "encoder.pkl"))
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def state_digest(path):
    """sha256 over a checkpoint's tensors (names and float32 bytes): the fixtures name the
    weights they were computed on, so a writer that drifts fails loudly."""
    state = safe_pickle.load_state_dict(path, ("dall_e", "torch.nn"))
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--with-dalle1-dvae", action="store_true", help="also dvae-dalle1/decoder.pkl (DALLE1_DVAE)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    write_mindalle(os.path.join(args.out, "mindalle"), args.size)
    write_dvae(os.path.join(args.out, "dvae"), args.size)
    if args.with_dalle1_dvae:
        write_dvae(os.path.join(args.out, "dvae-dalle1"), "dalle1")


if __name__ == "__main__":
    main()
