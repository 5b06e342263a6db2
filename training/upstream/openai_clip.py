"""Export an OpenAI CLIP checkpoint (ViT-B/32, ViT-B/16, ViT-L/14…) into a model pack.

DALL·E reranks its samples with a CLIP trained apart from the generator; a pack does the same
when its `clip` section comes from a public checkpoint. With `--base`, the new pack keeps the
base pack's generator and decoder and takes the checkpoint's CLIP graphs, tokenizer,
preprocessing and templates; without it, the pack holds CLIP alone and serves classification
and embeddings only. The service loads either like any other pack:

    /usr/bin/python3 -m training.upstream.openai_clip --checkpoint ViT-B-32.pt \\
        --bpe bpe_simple_vocab_16e6.txt.gz --out packs/openai-clip-vit-b-32 [--base packs/demo-shapes]

`--checkpoint` is a file from OpenAI's `clip` package (a TorchScript archive, as downloaded by
`clip.load`), a plain state dict with the same names, or the same weights in Hugging Face's
layout (`pytorch_model.bin` or `model.safetensors` of openai/clip-vit-*); `--bpe` is the merges
file that package ships (or the repository's `merges.txt`). Both come from a machine with
internet; nothing is downloaded here.
"""
import argparse
import gzip
import json
import math
import os
import shutil
from collections import OrderedDict

import torch
import torch.nn as nn

from training.export.graphs import OPSET, torchscript_exporter
from training.pack.manifest import SCHEMA_VERSION, file_entry, write_manifest
from training.world.bpe import bytes_to_unicode

# OpenAI's preprocessing (clip/clip.py): bicubic resize of the short side, centre crop.
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
# OpenAI's selection of seven ImageNet templates (their prompt-engineering notebook).
TEMPLATES = ["itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
             "a {} in a video game.", "art of the {}.", "a photo of the small {}."]
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# The merges OpenAI's tokenizer reads from its file: 49152 ids less 256 bytes and 2 specials.
MAX_MERGES = 49152 - 256 - 2
# Keys the TorchScript archive carries besides the weights (clip.build_model drops them too).
NON_WEIGHTS = ("input_resolution", "context_length", "vocab_size")
IMAGE_FILE, TEXT_FILE, TOKENIZER_FILE = "clip-image.onnx", "clip-text.onnx", "clip-tokenizer.json"


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """nn.MultiheadAttention's parameters (so the checkpoint's names load), batch first."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x, mask=None):
        b, n, w = x.shape
        q, k, v = nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, n, self.heads, w // self.heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / (w // self.heads) ** 0.5
        if mask is not None:
            scores = scores + mask
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, w)
        return self.out_proj(out)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.attn = Attention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x, mask=None):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x, mask=None):
        for block in self.resblocks:
            x = block(x, mask)
        return x


class VisionTransformer(nn.Module):
    def __init__(self, resolution, patch, width, layers, heads, embed_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros((resolution // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, embed_dim))

    def forward(self, pixel_values):
        x = self.conv1(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0, :]) @ self.proj


class TextTransformer(nn.Module):
    """The text half of OpenAI's CLIP module; its parameters sit at the checkpoint's top level."""

    def __init__(self, vocab, context, width, layers, heads, embed_dim, eos_id):
        super().__init__()
        self.eos_id = eos_id
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.zeros(context, width))
        self.transformer = Transformer(width, layers, heads)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.zeros(width, embed_dim))
        self.register_buffer("mask", torch.full((context, context), float("-inf")).triu(1), persistent=False)

    def forward(self, input_ids):
        x = self.token_embedding(input_ids) + self.positional_embedding
        x = self.ln_final(self.transformer(x, self.mask))
        # The first EOS (OpenAI takes the largest id, which is EOS in its own layout).
        eos = (input_ids == self.eos_id).float().argmax(-1)
        pooled = x.gather(1, eos.view(-1, 1, 1).expand(-1, 1, x.shape[-1])).squeeze(1)
        return pooled @ self.text_projection


class OpenAIClip(nn.Module):
    """OpenAI's ViT CLIP with the checkpoint's parameter names (clip/model.py)."""

    def __init__(self, *, embed_dim, resolution, vision_layers, vision_width, patch,
                 context, vocab, text_width, text_heads, text_layers):
        super().__init__()
        self.visual = VisionTransformer(resolution, patch, vision_width, vision_layers, vision_width // 64, embed_dim)
        self.text = TextTransformer(vocab, context, text_width, text_layers, text_heads, embed_dim, eos_id=vocab - 1)
        self.logit_scale = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(1 / 0.07)))))

    # The text tower's names are the checkpoint's top-level ones, not `text.*`.
    def load_checkpoint(self, state):
        state = {k: v for k, v in state.items() if k not in NON_WEIGHTS}
        mapped = {(k if k.startswith("visual.") or k == "logit_scale" else f"text.{k}"): v.float() for k, v in state.items()}
        self.load_state_dict(mapped, strict=True)

    def checkpoint_state(self):
        return {(k[len("text."):] if k.startswith("text.") else k): v for k, v in self.state_dict().items()}


def geometry_of(state):
    """The architecture a checkpoint holds, read from its tensor shapes as clip.build_model does."""
    if "visual.proj" not in state:
        raise SystemExit("only ViT CLIP checkpoints are supported (this looks like a ResNet one: RN50, RN101…)")
    vision_width, _, patch, _ = state["visual.conv1.weight"].shape
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    text_width = state["ln_final.weight"].shape[0]

    def layers(prefix):
        return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})

    return dict(
        embed_dim=state["text_projection"].shape[1],
        resolution=patch * grid,
        vision_layers=layers("visual.transformer.resblocks."),
        vision_width=vision_width,
        patch=patch,
        context=state["positional_embedding"].shape[0],
        vocab=state["token_embedding.weight"].shape[0],
        text_width=text_width,
        text_heads=text_width // 64,
        text_layers=layers("transformer.resblocks."),
    )


def read_safetensors(path):
    """A .safetensors file's tensors (Debian has no safetensors package; the format is a JSON
    header of names, dtypes, shapes and byte ranges, then the raw little-endian data)."""
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}
    with open(path, "rb") as f:
        header_size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_size))
        data = bytearray(f.read())
    header.pop("__metadata__", None)
    return {name: torch.frombuffer(data, dtype=dtypes[info["dtype"]], offset=info["data_offsets"][0],
                                   count=math.prod(info["shape"])).reshape(info["shape"])
            for name, info in header.items()}


def from_hugging_face(state):
    """OpenAI's parameter names for a checkpoint in Hugging Face's CLIPModel layout (the
    openai/clip-vit-* repositories): q/k/v projections joined into one in_proj, Linear
    projections transposed into matrices, the rest renamed. Unknown names pass through, so
    the strict load names them."""
    renames = {
        "vision_model.embeddings.class_embedding": "visual.class_embedding",
        "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
        "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
        "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight",
        "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
        "vision_model.post_layernorm.weight": "visual.ln_post.weight",
        "vision_model.post_layernorm.bias": "visual.ln_post.bias",
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "text_model.final_layer_norm.weight": "ln_final.weight",
        "text_model.final_layer_norm.bias": "ln_final.bias",
        "logit_scale": "logit_scale",
    }
    block_renames = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
                     "self_attn.out_proj": "attn.out_proj"}
    out = {"visual.proj": state["visual_projection.weight"].t(), "text_projection": state["text_projection.weight"].t()}
    for name, tensor in state.items():
        if name in ("visual_projection.weight", "text_projection.weight") or name.endswith("position_ids"):
            continue
        if name in renames:
            out[renames[name]] = tensor
            continue
        parts = name.split(".")
        if len(parts) > 4 and parts[1:3] == ["encoder", "layers"] and parts[0] in ("vision_model", "text_model"):
            block = ("visual." if parts[0] == "vision_model" else "") + f"transformer.resblocks.{parts[3]}."
            rest = ".".join(parts[4:])
            projection = rest.split(".")[1] if rest.startswith("self_attn.") else None
            if projection in ("q_proj", "k_proj", "v_proj"):
                if projection == "q_proj":  # joined once, when the q projection comes by
                    kind = rest.split(".")[-1]  # weight or bias
                    prefix = ".".join(parts[:4])
                    out[f"{block}attn.in_proj_{kind}"] = torch.cat(
                        [state[f"{prefix}.self_attn.{p}.{kind}"] for p in ("q_proj", "k_proj", "v_proj")])
                continue
            for old, new in block_renames.items():
                if rest.startswith(old + "."):
                    out[block + new + rest[len(old):]] = tensor
                    break
            else:
                out[name] = tensor
            continue
        out[name] = tensor
    return out


def read_checkpoint(path):
    """OpenAI's parameter names and tensors from a TorchScript archive (OpenAI's downloads), a
    plain torch.save, or a Hugging Face CLIPModel checkpoint (pytorch_model.bin or .safetensors)."""
    if path.endswith(".safetensors"):
        state = read_safetensors(path)
    else:
        try:
            state = torch.jit.load(path, map_location="cpu").state_dict()
        except RuntimeError:
            # Tensors only: a downloaded pickle must not be able to run code here.
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
    return from_hugging_face(state) if "visual_projection.weight" in state else state


def load_model(path):
    state = read_checkpoint(path)
    model = OpenAIClip(**geometry_of(state))
    model.load_checkpoint(state)
    return model.eval()


# --- Tokenizer: OpenAI's byte-level BPE (clip/simple_tokenizer.py) as a tokenizer.json ---

def read_merges(bpe_path):
    """OpenAI's bpe_simple_vocab_16e6.txt.gz, or Hugging Face's merges.txt (the same lines)."""
    with (gzip.open if bpe_path.endswith(".gz") else open)(bpe_path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    # The first line is a version header; OpenAI's tokenizer reads the next MAX_MERGES.
    return [tuple(line.split()) for line in lines[1:1 + MAX_MERGES] if line.strip()]


def vocabulary(merges):
    """OpenAI's id order: bytes, bytes ending a word, merges, then the two specials."""
    units = list(bytes_to_unicode().values())
    tokens = units + [u + "</w>" for u in units] + ["".join(m) for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}


# OpenAI's word pattern without its two special-token alternatives: typed, they stay text.
WORD_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


def tokenizer_json(merges):
    vocab = vocabulary(merges)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for t in (BOS, EOS)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"}, {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": WORD_PATTERN}, "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "</w>", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }


def merge_pair(parts, pair):
    """`parts` with every adjacent occurrence of `pair`, left to right, joined into one symbol."""
    merged, i = [], 0
    while i < len(parts):
        if i < len(parts) - 1 and (parts[i], parts[i + 1]) == pair:
            merged.append(parts[i] + parts[i + 1])
            i += 2
        else:
            merged.append(parts[i])
            i += 1
    return merged


def reference_encode(text, merges):
    """OpenAI's SimpleTokenizer.encode without ftfy's repairs and without its special-token
    alternatives. It unescapes HTML entities as OpenAI does; the service does not (by choice)."""
    import html

    import regex

    vocab = vocabulary(merges)
    ranks = {pair: i for i, pair in enumerate(merges)}
    byte_map = bytes_to_unicode()
    text = regex.sub(r"\s+", " ", html.unescape(html.unescape(text)).strip()).strip().lower()
    ids = []
    for word in regex.findall(WORD_PATTERN, text, regex.IGNORECASE):
        parts = [byte_map[b] for b in word.encode("utf-8")]
        parts[-1] += "</w>"
        while len(parts) > 1:
            pairs = [(ranks.get((a, b), len(ranks)), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(pairs)
            if rank == len(ranks):
                break
            parts = merge_pair(parts, (parts[i], parts[i + 1]))
        ids.extend(vocab[p] for p in parts)
    return ids


# --- PyTorch's answers, for checking an exported pack (src/cli/check-clip.ts) ---

CHECK_TEXTS = [
    "a photo of a cat",
    "A Photo   of a DOG\n\ton the grass",
    "itap of a red car.",
    "naïve café, crème brûlée — 東京 🚀",
    "numbers 1984 and 3.14 and 42nd",
    "don't won't they'll we've I'm she'd it's",
    "<|endoftext|> typed in a prompt stays text <|startoftext|>",
    "?!... ##  ~~~",
    " ".join(["long"] * 120),
    "",
]


def check_image(size):
    """A deterministic RGB test image at the CLIP input size (so preprocessing is the
    normalisation alone): a colour gradient with seeded noise, as PNG bytes and as pixels."""
    import io

    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size] / max(1, size - 1)
    noise = np.random.default_rng(7).integers(-40, 41, size=(size, size, 3))
    pixels = np.clip(np.stack([x * 255, y * 255, (1 - x) * 255], -1) + noise, 0, 255).astype(np.uint8)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    return png.getvalue(), pixels


@torch.no_grad()
def reference_outputs(model, merges, clip, texts=CHECK_TEXTS):
    """Token ids by OpenAI's algorithm and raw (unnormalised) PyTorch embeddings of `texts` and
    of check_image(), laid out as the pack's manifest (`clip`) says."""
    import base64

    token_ids = [reference_encode(text, merges) for text in texts]
    rows = []
    for ids in token_ids:
        framed = [clip["bos_id"]] + ids[: clip["context_length"] - 2] + [clip["eos_id"]]
        rows.append(framed + [clip["pad_id"]] * (clip["context_length"] - len(framed)))
    png, pixels = check_image(clip["preprocess"]["size"])
    mean, std = torch.tensor(clip["preprocess"]["mean"]), torch.tensor(clip["preprocess"]["std"])
    x = ((torch.from_numpy(pixels).float() / 255 - mean) / std).permute(2, 0, 1).unsqueeze(0)
    return {
        "texts": texts,
        "token_ids": token_ids,
        "text_embeds": model.text(torch.tensor(rows)).tolist(),
        "image_png_base64": base64.b64encode(png).decode(),
        "image_embeds": model.visual(x).tolist(),
        "logit_scale": float(model.logit_scale.exp()),
    }


# --- Export ---

def export_graphs(model, out_dir):
    g = model.visual
    size = int(round((g.positional_embedding.shape[0] - 1) ** 0.5)) * g.conv1.kernel_size[0]
    context = model.text.positional_embedding.shape[0]
    ids = torch.zeros(2, context, dtype=torch.long)
    ids[:, 1] = model.text.eos_id
    with torch.no_grad():
        torch.onnx.export(model.visual, (torch.zeros(2, 3, size, size),), os.path.join(out_dir, IMAGE_FILE),
                          input_names=["pixel_values"], output_names=["image_embeds"], opset_version=OPSET,
                          **torchscript_exporter(),
                          dynamic_axes={"pixel_values": {0: "B"}, "image_embeds": {0: "B"}})
        torch.onnx.export(model.text, (ids,), os.path.join(out_dir, TEXT_FILE),
                          input_names=["input_ids"], output_names=["text_embeds"], opset_version=OPSET,
                          **torchscript_exporter(),
                          dynamic_axes={"input_ids": {0: "B"}, "text_embeds": {0: "B"}})
    return size, context


def clip_section(model, merges, size, context):
    vocab = vocabulary(merges)
    if len(vocab) != model.text.token_embedding.num_embeddings:
        raise SystemExit(f"the merges file gives {len(vocab)} tokens, the checkpoint embeds "
                         f"{model.text.token_embedding.num_embeddings}: they do not belong together")
    return {
        "tokenizer": TOKENIZER_FILE,
        "context_length": context,
        "bos_id": vocab[BOS],
        "eos_id": vocab[EOS],
        # OpenAI's clip.tokenize pads with 0; the causal mask keeps padding out of the EOS state.
        "pad_id": 0,
        "embed_dim": model.visual.proj.shape[1],
        "logit_scale": round(float(model.logit_scale.exp()), 4),
        "graphs": {"image": IMAGE_FILE, "text": TEXT_FILE},
        "preprocess": {"size": size, "resize": "shortest_edge", "interpolation": "bicubic", "mean": MEAN, "std": STD},
        "templates": TEMPLATES,
    }


def export_pack(checkpoint, bpe, out, base=None, name=None, version=None, reference=None):
    """Writes the pack `out`: the checkpoint's CLIP, beside `base`'s generator and decoder when a
    base is given, else alone (a pack that classifies and embeds but does not generate); and,
    given `reference`, PyTorch's answers there (reference_outputs). Returns the manifest."""
    if os.path.exists(out):
        raise SystemExit(f"{out} exists; choose a new folder")
    model = load_model(checkpoint)
    merges = read_merges(bpe)
    checkpoint_name = os.path.splitext(os.path.basename(checkpoint))[0]
    os.makedirs(out)
    if base is None:
        manifest = {"schema_version": SCHEMA_VERSION, "name": name or f"openai-clip-{checkpoint_name.lower()}"[:64],
                    "version": version or checkpoint_name[:64],
                    "description": f"OpenAI CLIP {checkpoint_name} alone: zero-shot classification and embeddings, no generator."}
        kept = set()
    else:
        with open(os.path.join(base, "manifest.json")) as f:
            manifest = json.load(f)
        # Every file of the base but its CLIP's: external weight files go with the graphs that use them.
        clip_files = {manifest["clip"]["tokenizer"], *manifest["clip"]["graphs"].values()} if "clip" in manifest else set()
        kept = ({manifest["generator"]["tokenizer"], manifest["decoder"]["graph"], *manifest["generator"]["graphs"].values()}
                | (set(manifest["files"]) - clip_files))
        for file in kept:
            shutil.copyfile(os.path.join(base, file), os.path.join(out, file))
        base_name, base_version = manifest["name"], manifest["version"]
        manifest["name"] = name or f"{base_name}-clip-{checkpoint_name.lower()}"[:64]
        manifest["version"] = version or f"{base_version}+clip.{checkpoint_name}"[:64]
        manifest["description"] = f"The generator and decoder of {base_name} {base_version}, reranked by OpenAI CLIP {checkpoint_name}."
    size, context = export_graphs(model, out)
    with open(os.path.join(out, TOKENIZER_FILE), "w") as f:
        json.dump(tokenizer_json(merges), f, ensure_ascii=False)
    manifest["clip"] = clip_section(model, merges, size, context)
    names = kept | {IMAGE_FILE, TEXT_FILE, TOKENIZER_FILE}
    manifest["files"] = {n: file_entry(os.path.join(out, n)) for n in sorted(names)}
    write_manifest(out, manifest)
    if reference:
        with open(reference, "w") as f:
            json.dump(reference_outputs(model, merges, manifest["clip"]), f)
    return manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="OpenAI CLIP checkpoint: TorchScript archive, state dict, "
                                                            "or Hugging Face pytorch_model.bin / model.safetensors")
    parser.add_argument("--bpe", required=True, help="bpe_simple_vocab_16e6.txt.gz from OpenAI's clip package, or merges.txt")
    parser.add_argument("--base", help="a pack whose generator and decoder the new pack keeps; without it the "
                                           "pack serves CLIP only (classification and embeddings)")
    parser.add_argument("--out", required=True, help="the new pack's folder (must not exist)")
    parser.add_argument("--name", help="pack name (default: <base>-clip-<checkpoint>, or openai-clip-<checkpoint>)")
    parser.add_argument("--version", help="pack version (default: <base version>+clip.<checkpoint>, or <checkpoint>)")
    parser.add_argument("--reference", help="also write PyTorch's answers here, for `npm run check-clip -- OUT FILE`")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    manifest = export_pack(args.checkpoint, args.bpe, args.out, args.base, args.name, args.version, args.reference)
    print(json.dumps({"pack": args.out, "name": manifest["name"], "clip": {k: manifest["clip"][k] for k in ("embed_dim", "context_length", "logit_scale")}}))


if __name__ == "__main__":
    main()
