"""minDALL-E (Kakao Brain) rebuilt from its checkpoints' tensors, in the shapes of packs/CONTRACT.md.

Stage 2 is a GPT over [64 text tokens | 256 image codes] with separate text and image token and
position embeddings and an image-only head (`Transformer1d` upstream); stage 1 is a VQGAN (f16,
16,384 codes), whose decoder draws pixels from codes and whose encoder (image completion) gives
the codes of pixels. Parameter names are upstream's, so their `state_dict`s load as they are. The
geometry is read from the tensors; heads and the VQGAN's channel layout from upstream's
`config.yaml`.
"""
import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.kvcache.parts import cached_positions, part_scores, step_on_stacked, weights_over_parts


@contextlib.contextmanager
def _parameters_on_meta():
    """Modules built inside get parameters without storage, so nothing is allocated or
    initialised (torch 1.13 has neither `with torch.device("meta")` nor `assign=True`)."""
    register = nn.Module.register_parameter

    def on_meta(module, name, param):
        register(module, name, None if param is None else nn.Parameter(param.to("meta"), param.requires_grad))

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def build_on_state(build, state):
    """`build()`'s module with `state`'s tensors as its parameters, not copies of them, so a
    checkpoint is held in memory once (minDALL-E's GPT is 5 GB). As strict as load_state_dict."""
    with _parameters_on_meta():
        model = build()
    expected = dict(model.named_parameters())
    if set(expected) != set(state) or list(model.buffers()):
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise RuntimeError(f"state does not fit {type(model).__name__}: missing {missing}, unexpected {unexpected}")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise RuntimeError(f"{name}: shape {list(tensor.shape)} in the state, "
                               f"{list(expected[name].shape)} in the model")
        owner, _, attr = name.rpartition(".")
        owner = model.get_submodule(owner)
        owner._parameters[attr] = nn.Parameter(tensor.to(expected[name].dtype), expected[name].requires_grad)
    return model.eval()


# ---------------------------------------------------------------- stage 2: the transformer

class SelfAttention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.key, self.query, self.value, self.proj = (nn.Linear(width, width) for _ in range(4))

    def split(self, x):
        # The head size a constant: read from the shape, onnxruntime reshapes to -1 there, which a
        # run of zero rows cannot resolve (kv_step runs its prefill half on zero rows).
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # [B, H, T, D]

    def forward(self, x):
        """Returns (y, kv [2, B, H, S, D]), causal over the text (as upstream samples)."""
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        att = q @ (k.transpose(-2, -1) * (1.0 / math.sqrt(k.shape[-1])))
        t = x.shape[1]
        att = att.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
        return self.proj(self.merge(att.softmax(-1) @ v)), torch.stack([k, v])

    def step(self, x, parts):
        """One position x [B, 1, W] after the cache's parts [(k, v), ...], each [B, H, P_i, D]:
        (y, its k, its v). The cache is read where it lies: concatenating first would copy it
        on every step. The scale goes on q, not on the whole cache (a power of two at
        upstream's head sizes, so the scaling rounds nothing)."""
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        q = q * (1.0 / math.sqrt(k.shape[-1]))
        scores = part_scores(q, parts)
        att = torch.cat(scores + [(q * k).sum(-1, keepdim=True)], -1).softmax(-1)
        y = weights_over_parts(att, parts) + att[..., -1:] * v
        return self.proj(self.merge(y)), k, v

    def merge(self, y):
        """[B, H, T, D] -> [B, T, H * D], the sizes read from the tensor reshaped (see split)."""
        y = y.transpose(1, 2)
        return y.reshape(y.shape[0], y.shape[1], self.heads * self.head_dim)


class Block(nn.Module):
    def __init__(self, width, heads, approximate_gelu):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.approximate_gelu = approximate_gelu

    def forward(self, x):
        y, kv = self.attn(self.ln1(x))
        return self.feed_forward(x + y), kv

    def step(self, x, parts):
        y, k, v = self.attn.step(self.ln1(x), parts)
        return self.feed_forward(x + y), k, v

    def feed_forward(self, x):
        h = self.mlp[0](self.ln2(x))
        h = h * torch.sigmoid(1.702 * h) if self.approximate_gelu else F.gelu(h)
        return x + self.mlp[2](h)


class Stage2(nn.Module):
    """Upstream's Transformer1d without the text head (the contract's logits are image-only)."""

    def __init__(self, vocab_txt, vocab_img, width, layers, heads, ctx_txt, ctx_img, approximate_gelu=False):
        super().__init__()
        self.tok_emb_img, self.tok_emb_txt = nn.Embedding(vocab_img, width), nn.Embedding(vocab_txt, width)
        self.pos_emb_img, self.pos_emb_txt = nn.Embedding(ctx_img, width), nn.Embedding(ctx_txt, width)
        self.blocks = nn.Sequential(*(Block(width, heads, approximate_gelu) for _ in range(layers)))
        self.ln_f = nn.LayerNorm(width)
        self.head_img = nn.Linear(width, vocab_img, bias=False)
        self.text_length, self.image_tokens, self.heads = ctx_txt, ctx_img, heads
        self.layers, self.head_dim = layers, width // heads

    @classmethod
    def from_state(cls, state, heads, approximate_gelu=False):
        layers = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
        (vocab_img, width), vocab_txt = state["tok_emb_img.weight"].shape, state["tok_emb_txt.weight"].shape[0]
        kept = {k: v for k, v in state.items() if not k.startswith("head_txt.")}
        positions = state["pos_emb_txt.weight"].shape[0], state["pos_emb_img.weight"].shape[0]
        return build_on_state(lambda: cls(vocab_txt, vocab_img, width, layers, heads, *positions, approximate_gelu),
                              kept)

    def prefill(self, text_tokens):
        """text [B, T] -> (logits for i_0 [B, K], present_kv [L, 2, B, H, T, D])."""
        positions = torch.arange(text_tokens.shape[1])
        x = self.tok_emb_txt(text_tokens) + self.pos_emb_txt(positions)
        present = []
        for block in self.blocks:
            x, kv = block(x)
            present.append(kv)
        return self.head_img(self.ln_f(x[:, -1])), torch.stack(present)

    def step(self, image_token, past_kv):
        """image_token [B, 1], past_kv [L, 2, B, H, P, D] -> (logits [B, K], present [.., P+1, D])."""
        return step_on_stacked(self.step_layers, image_token, past_kv)

    def step_layers(self, image_token, caches):
        """image_token [B, 1] after caches[l], layer l's cache as parts [(k, v), ...] along the
        positions -> (logits [B, K], [(k, v)] of the new position per layer)."""
        # The new token's image position is P - T, read from the cache shapes inside the graph.
        position = cached_positions(caches[0]) - self.text_length
        x = self.tok_emb_img(image_token) + self.pos_emb_img(position).unsqueeze(0)
        new = []
        for block, parts in zip(self.blocks, caches):
            x, k, v = block.step(x, parts)
            new.append((k, v))
        return self.head_img(self.ln_f(x[:, -1])), new


# ---------------------------------------------------------------- stage 1: the VQGAN

def group_norm(channels):
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.norm1, self.conv1 = group_norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = group_norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        if c_in != c_out:
            self.nin_shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = group_norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        q = self.q(n).reshape(b, c, h * w).transpose(1, 2)
        k, v = self.k(n).reshape(b, c, h * w), self.v(n).reshape(b, c, h * w)
        att = (q @ k * (int(c) ** -0.5)).softmax(-1)  # [B, HW (query), HW (key)]
        return x + self.proj_out((v @ att.transpose(1, 2)).reshape(b, c, h, w))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # upstream's asymmetric padding


class Encoder(nn.Module):
    """taming-transformers' Encoder as minDALL-E configures it (no timestep embedding, no double_z)."""

    def __init__(self, ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels, in_channels=3, **_):
        super().__init__()
        levels, res = len(ch_mult), resolution
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        block_in = ch
        for level in range(levels):
            down = nn.Module()
            down.block, down.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks):
                down.block.append(ResnetBlock(block_in, ch * ch_mult[level]))
                block_in = ch * ch_mult[level]
                if res in attn_resolutions:
                    down.attn.append(AttnBlock(block_in))
            if level != levels - 1:
                down.downsample = Downsample(block_in)
                res //= 2
            self.down.append(down)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = (
            ResnetBlock(block_in, block_in), AttnBlock(block_in), ResnetBlock(block_in, block_in))
        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, z_channels, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for down in self.down:
            for i, block in enumerate(down.block):
                h = block(h)
                if len(down.attn) > 0:
                    h = down.attn[i](h)
            if hasattr(down, "downsample"):
                h = down.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """taming-transformers' Decoder as minDALL-E configures it (no timestep embedding)."""

    def __init__(self, ch, out_ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels, **_):
        super().__init__()
        levels = len(ch_mult)
        block_in, res = ch * ch_mult[-1], resolution // 2 ** (levels - 1)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1, self.mid.attn_1, self.mid.block_2 = (
            ResnetBlock(block_in, block_in), AttnBlock(block_in), ResnetBlock(block_in, block_in))
        self.up = nn.ModuleList()
        for level in reversed(range(levels)):
            up = nn.Module()
            up.block, up.attn = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                up.block.append(ResnetBlock(block_in, ch * ch_mult[level]))
                block_in = ch * ch_mult[level]
                if res in attn_resolutions:
                    up.attn.append(AttnBlock(block_in))
            if level != 0:
                up.upsample = Upsample(block_in)
                res *= 2
            self.up.insert(0, up)
        self.norm_out = group_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, padding=1)

    def forward(self, z):
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for level in reversed(range(len(self.up))):
            up = self.up[level]
            for i, block in enumerate(up.block):
                h = block(h)
                if len(up.attn) > 0:
                    h = up.attn[i](h)
            if hasattr(up, "upsample"):
                h = up.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Stage1Decoder(nn.Module):
    """Codebook indices [B, N] -> uint8 [B, H, W, 3]: codebook lookup, post-quant conv, VQGAN
    decoder, then upstream's `clamp(x * 0.5 + 0.5, 0, 1)`, rounded to bytes inside the graph."""

    def __init__(self, n_embed, embed_dim, hparams):
        super().__init__()
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(n_embed, embed_dim)
        self.post_quant_conv = nn.Conv2d(embed_dim, hparams["z_channels"], 1)
        self.decoder = Decoder(**hparams)
        self.grid = hparams["resolution"] // 2 ** (len(hparams["ch_mult"]) - 1)
        self.resolution = hparams["resolution"]

    @classmethod
    def from_state(cls, state, hparams):
        n_embed, embed_dim = state["quantize.embedding.weight"].shape
        kept = {k: v for k, v in state.items() if not k.startswith(("encoder.", "quant_conv."))}
        return build_on_state(lambda: cls(n_embed, embed_dim, hparams), kept)

    def forward(self, image_tokens):
        b = image_tokens.shape[0]
        z = self.quantize.embedding(image_tokens).view(b, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        x = self.decoder(self.post_quant_conv(z))
        x = (x * 0.5 + 0.5).clamp(0.0, 1.0)
        return (x * 255.0).round().clamp(0.0, 255.0).to(torch.uint8).permute(0, 2, 3, 1)


class Stage1Encoder(nn.Module):
    """uint8 [B, H, W, 3] -> codebook indices [B, N], as upstream's `VQGAN.get_codes`: pixels scaled
    as minDALL-E's examples feed it (`ToTensor`, then `Normalize(0.5, 0.5)`: -1 to 1), VQGAN encoder,
    quant conv, then the nearest code by upstream's own squared distance (argmin, first on a tie)."""

    def __init__(self, n_embed, embed_dim, hparams):
        super().__init__()
        if hparams.get("double_z"):
            raise ValueError("a VQGAN with double_z has no single latent per cell to quantise")
        self.encoder = Encoder(**hparams)
        self.quant_conv = nn.Conv2d(hparams["z_channels"], embed_dim, 1)
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(n_embed, embed_dim)
        self.grid = hparams["resolution"] // 2 ** (len(hparams["ch_mult"]) - 1)
        self.resolution = hparams["resolution"]

    @classmethod
    def from_state(cls, state, hparams):
        n_embed, embed_dim = state["quantize.embedding.weight"].shape
        kept = {k: v for k, v in state.items() if k.startswith(("encoder.", "quant_conv.", "quantize."))}
        return build_on_state(lambda: cls(n_embed, embed_dim, hparams), kept)

    def forward(self, pixels):
        x = (pixels.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
        h = self.quant_conv(self.encoder(x))
        z = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
        e = self.quantize.embedding.weight
        d = (z ** 2).sum(1, keepdim=True) + (e ** 2).sum(1) - 2 * (z @ e.t())
        return d.argmin(1).view(pixels.shape[0], self.grid ** 2)
