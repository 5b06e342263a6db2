"""OpenAI's CLIP (ViT-B/32, ViT-B/16, ViT-L/14…) as its checkpoints name it, and its tokenizer.

The model keeps the checkpoint's parameter names (clip/model.py), so a state dict loads as it is;
`read_checkpoint` takes a file from OpenAI's `clip` package (a TorchScript archive, as downloaded
by `clip.load`), a plain state dict with the same names, or the same weights in Hugging Face's
layout (`pytorch_model.bin` or `model.safetensors` of openai/clip-vit-*). The tokenizer is OpenAI's
byte-level BPE (clip/simple_tokenizer.py) as a Hugging Face tokenizer.json, from the merges file
that package ships (or the repository's `merges.txt`). training/export/openai_clip_pack.py makes
a pack of them.
"""
import gzip
import json
import math
from collections import OrderedDict

import torch
import torch.nn as nn

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
        mapped = {(k if k.startswith("visual.") or k == "logit_scale" else f"text.{k}"): v.float()
                  for k, v in state.items()}
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
