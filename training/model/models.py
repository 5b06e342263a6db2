"""The three models of a pack: a VQ-VAE image tokenizer, a DALL·E-style generator, CLIP.

Shapes and layouts follow packs/CONTRACT.md; training/export/graphs.py turns each into its ONNX graphs.
"""
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.kvcache.parts import cached_positions, part_scores, step_on_stacked, weights_over_parts

MASK_VALUE = -1e9


@dataclass
class VQConfig:
    image_size: int = 64
    grid: int = 8
    codebook_size: int = 256
    code_dim: int = 64
    hidden: int = 64


@dataclass
class GPTConfig:
    text_vocab_size: int = 512
    text_length: int = 24
    codebook_size: int = 256
    grid: int = 8
    width: int = 128
    layers: int = 4
    heads: int = 4

    @property
    def image_tokens(self):
        return self.grid * self.grid

    @property
    def head_dim(self):
        return self.width // self.heads


@dataclass
class CLIPConfig:
    image_size: int = 64
    patch: int = 8
    vision_width: int = 96
    vision_layers: int = 3
    text_vocab_size: int = 512
    context_length: int = 32
    text_width: int = 96
    text_layers: int = 3
    heads: int = 4
    embed_dim: int = 64
    eos_id: int = 2
    stem_channels: int = 0  # > 0: a convolutional stem before the patch embedding
    # > 0 (needs stem_channels): the stem's convolutions see only where objects are, never
    # their colour (ShapeStem); the least distance from the background, in normalised pixel
    # units, that an object's interior has.
    shape_mask_threshold: float = 0.0


def config_dict(config):
    return asdict(config)


# ---------------------------------------------------------------- image tokenizer


class ResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(), nn.Conv2d(channels, channels, 1))

    def forward(self, x):
        return x + self.body(x)


class VQVAE(nn.Module):
    """Patch VQ-VAE: each grid cell's pixels are embedded, mixed with 3x3 convolutions at
    grid resolution, and quantised on the unit sphere (cosine distance keeps the whole
    codebook in use); the decoder mirrors it and maps each code back to a patch of pixels.
    Working at grid resolution keeps training cheap on a CPU.
    """

    def __init__(self, config: VQConfig, ema_decay=0.99, restart_every=20):
        super().__init__()
        self.config = config
        self.ema_decay, self.restart_every, self.updates = ema_decay, restart_every, 0
        h, patch = config.hidden, config.image_size // config.grid
        self.encoder = nn.Sequential(
            nn.Conv2d(3, h, patch, stride=patch), ResBlock(h), ResBlock(h),
            nn.ReLU(), nn.Conv2d(h, config.code_dim, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(config.code_dim, h, 3, padding=1), ResBlock(h), ResBlock(h),
            nn.ReLU(), nn.ConvTranspose2d(h, 3, patch, stride=patch))
        codebook = F.normalize(torch.randn(config.codebook_size, config.code_dim), dim=-1)
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_count", torch.ones(config.codebook_size))
        self.register_buffer("ema_sum", codebook.clone())
        self.register_buffer("usage", torch.zeros(config.codebook_size), persistent=False)

    def encode_latents(self, images):
        """images: float [B, 3, S, S] in [0, 1] -> latents [B, grid*grid, code_dim]."""
        z = self.encoder(images * 2 - 1)
        return F.normalize(z.flatten(2).transpose(1, 2), dim=-1)

    def quantize(self, latents):
        distances = (latents.pow(2).sum(-1, keepdim=True)
                     - 2 * latents @ self.codebook.t()
                     + self.codebook.pow(2).sum(-1))
        return distances.argmin(-1)

    @torch.no_grad()
    def encode(self, images):
        """images: float [B, 3, S, S] in [0, 1] -> codebook indices [B, grid*grid]."""
        return self.quantize(self.encode_latents(images))

    def decode_codes(self, codes):
        """codes: float [B, N, code_dim] -> pixels [B, 3, S, S] (unclamped, ~[0, 1])."""
        g = self.config.grid
        z = codes.transpose(1, 2).reshape(codes.shape[0], self.config.code_dim, g, g)
        return self.decoder(z)

    def decode(self, tokens):
        """tokens: int [B, N] -> pixels [B, 3, S, S]."""
        return self.decode_codes(F.embedding(tokens, self.codebook))

    def forward(self, images):
        latents = self.encode_latents(images)
        tokens = self.quantize(latents)
        quantized = F.embedding(tokens, self.codebook)
        if self.training:
            self._ema_update(latents.detach(), tokens)
        commitment = F.mse_loss(latents, quantized.detach())
        straight_through = latents + (quantized - latents).detach()
        return self.decode_codes(straight_through), tokens, commitment

    @torch.no_grad()
    def _ema_update(self, latents, tokens):
        flat, ids = latents.reshape(-1, latents.shape[-1]), tokens.reshape(-1)
        onehot = F.one_hot(ids, self.config.codebook_size).type_as(flat)
        d = self.ema_decay
        self.ema_count.mul_(d).add_(onehot.sum(0), alpha=1 - d)
        self.ema_sum.mul_(d).add_(onehot.t() @ flat, alpha=1 - d)
        n = self.ema_count.sum()
        count = (self.ema_count + 1e-5) / (n + self.config.codebook_size * 1e-5) * n
        self.codebook.copy_(F.normalize(self.ema_sum / count.unsqueeze(1), dim=-1))
        self.usage += onehot.sum(0)
        self.updates += 1
        if self.updates % self.restart_every == 0:
            self._restart_dead_codes(flat)

    def _restart_dead_codes(self, flat):
        # Codes unused for a while would waste the codebook (and early on the whole
        # codebook can collapse onto a few codes); move them onto random current latents.
        dead = (self.usage == 0).nonzero().flatten()
        self.usage.zero_()
        if len(dead) == 0:
            return
        picks = flat[torch.randint(0, flat.shape[0], (len(dead),), device=flat.device)]
        self.codebook[dead] = picks
        self.ema_count[dead] = self.ema_count.mean()
        self.ema_sum[dead] = picks * self.ema_count[dead].unsqueeze(1)


# ---------------------------------------------------------------- transformer parts


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def project(self, x):
        """x [B, S, W] -> q, k, v each [B, H, S, D]."""
        b, s, _ = x.shape
        qkv = self.qkv(x).reshape(b, s, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def attend(self, q, k, v, mask=None):
        scores = q @ k.transpose(-1, -2) * (self.head_dim ** -0.5)
        if mask is not None:
            scores = scores + mask
        return self.merge(scores.softmax(-1) @ v)

    def attend_cached(self, q, k, v, parts):
        """One new position against the cache and itself, reading the cache where it lies, in
        `parts` [(past_k, past_v), ...] along the positions: concatenating first would copy
        every layer's cache on every step."""
        scale = self.head_dim ** -0.5
        scores = part_scores(q, parts, scale)
        weights = torch.cat(scores + [(q * k).sum(-1, keepdim=True) * scale], -1).softmax(-1)
        return self.merge(weights_over_parts(weights, parts) + weights[..., -1:] * v)

    def merge(self, y):
        # The sizes read from the tensor reshaped: onnxruntime then reshapes with its dims as
        # they are, where a size read elsewhere becomes -1, which a run of zero rows cannot
        # resolve (kv_step runs its prefill half on zero rows).
        y = y.transpose(1, 2)
        return self.out(y.reshape(y.shape[0], y.shape[1], self.heads * self.head_dim))


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x, mask=None):
        """Returns (x, kv) with kv [2, B, H, S, D]."""
        q, k, v = self.attn.project(self.ln1(x))
        x = x + self.attn.attend(q, k, v, mask)
        x = x + self.mlp(self.ln2(x))
        return x, torch.stack([k, v])

    def step(self, x, parts):
        """One position x [B, 1, W] after the cache's parts [(k, v), ...], each [B, H, P_i, D]:
        (x, its k, its v)."""
        q, k, v = self.attn.project(self.ln1(x))
        x = x + self.attn.attend_cached(q, k, v, parts)
        x = x + self.mlp(self.ln2(x))
        return x, k, v


def causal_mask(size):
    return torch.full((size, size), MASK_VALUE).triu(1)


# ---------------------------------------------------------------- generator


class Generator(nn.Module):
    """Decoder-only transformer over [text | image]; logits only over the codebook.

    Text and image tokens have separate embedding tables (the joint id of code c is
    text_vocab_size + c); keeping them apart lets the prefill graph carry only the text
    table and the step graph only the image table.  The output head is tied to the image
    table, which keeps packs with an 8192-code codebook small.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.text_embed = nn.Embedding(c.text_vocab_size, c.width)
        self.image_embed = nn.Embedding(c.codebook_size, c.width)
        self.text_pos = nn.Parameter(torch.randn(c.text_length, c.width) * 0.02)
        self.image_pos = nn.Parameter(torch.randn(c.image_tokens, c.width) * 0.02)
        self.blocks = nn.ModuleList([Block(c.width, c.heads) for _ in range(c.layers)])
        self.ln_final = nn.LayerNorm(c.width)
        self.head_bias = nn.Parameter(torch.zeros(c.codebook_size))
        self.apply(_init_weights)

    def image_logits(self, h):
        return self.ln_final(h) @ self.image_embed.weight.t() + self.head_bias

    def forward(self, text_tokens, image_tokens):
        """Teacher-forced logits [B, N, codebook] for every image token."""
        n_in = image_tokens.shape[1] - 1
        text = self.text_embed(text_tokens) + self.text_pos
        image = self.image_embed(image_tokens[:, :-1]) + self.image_pos[:n_in]
        x = torch.cat([text, image], 1)
        mask = causal_mask(x.shape[1]).to(x.device)
        for block in self.blocks:
            x, _ = block(x, mask)
        return self.image_logits(x[:, self.config.text_length - 1:])

    def prefill(self, text_tokens):
        """text [B, T] -> (logits for i_0 [B, K], present_kv [L, 2, B, H, T, D])."""
        x = self.text_embed(text_tokens) + self.text_pos
        mask = causal_mask(self.config.text_length).to(x.device)
        present = []
        for block in self.blocks:
            x, kv = block(x, mask)
            present.append(kv)
        return self.image_logits(x[:, -1]), torch.stack(present)

    def step(self, image_token, past_kv):
        """image_token [B, 1] (code), past_kv [L, 2, B, H, P, D] -> (logits [B, K], present)."""
        return step_on_stacked(self.step_layers, image_token, past_kv)

    def step_layers(self, image_token, caches):
        """image_token [B, 1] (code) after caches[l], layer l's cache as parts [(k, v), ...]
        along the positions -> (logits [B, K], [(k, v)] of the new position per layer)."""
        # The new token sits at position P; reading P from the cache shapes keeps the
        # graph free of a position input.
        pos = F.embedding(cached_positions(caches[0]) - self.config.text_length, self.image_pos)
        x = self.image_embed(image_token) + pos.unsqueeze(0)
        new = []
        for block, parts in zip(self.blocks, caches):
            x, k, v = block.step(x, parts)
            new.append((k, v))
        return self.image_logits(x[:, -1]), new


def _init_weights(module):
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


# ---------------------------------------------------------------- CLIP


def conv_stem(in_channels, s):
    """Two overlapping stride-2 convolutions before the patch embedding: small data teaches a
    ViT shape far faster with them ("early convolutions", Xiao et al.)."""
    return nn.Sequential(nn.Conv2d(in_channels, s, 3, stride=2, padding=1), nn.GELU(),
                         nn.Conv2d(s, 2 * s, 3, stride=2, padding=1), nn.GELU())


class ShapeStem(nn.Module):
    """Patch tokens made of two parts that meet only when added: where the objects are, seen
    by the convolutions without their colour, and each patch's object colour, seen without
    the shape. With colour in its convolutions an image tower learns shape separately for
    each colour (a green thing is told apart only from the other shapes green things come
    in), and a colour-shape pair it never saw falls outside what it learnt; shape read from
    a colourless mask is learnt once, from every colour.

    The mask is each pixel's distance from the background (the mean colour of the image's
    border, where the world never draws) over the largest such distance around it: 1 inside
    any object, the anti-aliased fraction at its edges whatever the colour. The denominator
    never falls below `threshold`, so that background and decoder noise stay near 0."""

    def __init__(self, c: CLIPConfig):
        super().__init__()
        self.threshold = c.shape_mask_threshold
        self.shape = conv_stem(1, c.stem_channels)
        self.shape_patches = nn.Conv2d(2 * c.stem_channels, c.vision_width, c.patch // 4, stride=c.patch // 4)
        self.patch = c.patch
        # Per patch: the mask-weighted mean colour (the object's colour) and the coverage.
        self.colour = nn.Sequential(nn.Conv2d(4, c.vision_width, 1), nn.GELU(),
                                    nn.Conv2d(c.vision_width, c.vision_width, 1))

    def mask(self, x):
        border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], -1)
        background = border.mean(-1).view(-1, 3, 1, 1)
        distance = ((x - background) ** 2).sum(1, keepdim=True).sqrt()
        nearby = F.max_pool2d(distance, 3, stride=1, padding=1).clamp(min=self.threshold)
        return distance / nearby

    def forward(self, x):
        mask = self.mask(x)
        coverage = F.avg_pool2d(mask, self.patch)
        colour = F.avg_pool2d(mask * x, self.patch) / (coverage + 1e-3)
        shape = self.shape_patches(self.shape(mask))
        return shape + self.colour(torch.cat([colour, coverage], 1))


class VisionTower(nn.Module):
    def __init__(self, c: CLIPConfig):
        super().__init__()
        patches = (c.image_size // c.patch) ** 2
        self.stem, channels, stride = nn.Identity(), 3, c.patch
        if c.stem_channels:
            self.stem, channels, stride = conv_stem(3, c.stem_channels), 2 * c.stem_channels, c.patch // 4
        self.patchify = nn.Conv2d(channels, c.vision_width, stride, stride=stride)
        if c.shape_mask_threshold:  # the stem makes the patch tokens itself
            self.stem, self.patchify = ShapeStem(c), nn.Identity()
        self.cls = nn.Parameter(torch.randn(c.vision_width) * 0.02)
        self.pos = nn.Parameter(torch.randn(patches + 1, c.vision_width) * 0.02)
        self.ln_pre = nn.LayerNorm(c.vision_width)
        self.blocks = nn.ModuleList([Block(c.vision_width, c.heads) for _ in range(c.vision_layers)])
        self.ln_post = nn.LayerNorm(c.vision_width)
        self.proj = nn.Linear(c.vision_width, c.embed_dim, bias=False)

    def forward(self, pixel_values):
        x = self.patchify(self.stem(pixel_values)).flatten(2).transpose(1, 2)
        cls = self.cls.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], 1) + self.pos)
        for block in self.blocks:
            x, _ = block(x)
        return self.proj(self.ln_post(x[:, 0]))


class TextTower(nn.Module):
    def __init__(self, c: CLIPConfig):
        super().__init__()
        self.eos_id = c.eos_id
        self.embed = nn.Embedding(c.text_vocab_size, c.text_width)
        self.pos = nn.Parameter(torch.randn(c.context_length, c.text_width) * 0.01)
        self.blocks = nn.ModuleList([Block(c.text_width, c.heads) for _ in range(c.text_layers)])
        self.ln_final = nn.LayerNorm(c.text_width)
        self.proj = nn.Linear(c.text_width, c.embed_dim, bias=False)
        self.register_buffer("mask", causal_mask(c.context_length), persistent=False)

    def forward(self, input_ids):
        x = self.embed(input_ids) + self.pos
        for block in self.blocks:
            x, _ = block(x, self.mask)
        x = self.ln_final(x)
        # First EOS position, found in the graph (ArgMax keeps the first maximum).
        eos = (input_ids == self.eos_id).float().argmax(-1)
        pooled = x.gather(1, eos.view(-1, 1, 1).expand(-1, 1, x.shape[-1])).squeeze(1)
        return self.proj(pooled)


class CLIP(nn.Module):
    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        self.visual = VisionTower(config)
        self.text = TextTower(config)
        self.log_scale = nn.Parameter(torch.tensor(2.659))  # ln(1/0.07), as in CLIP
        self.apply(_init_weights)

    def logit_scale(self):
        return self.log_scale.exp().clamp(max=100.0)

    def forward(self, pixel_values, input_ids, positives=None):
        """Contrastive loss over a batch of (image, text) pairs. Without `positives` only
        pair i matches caption i; `positives` [B, B] bool marks every caption that is true
        of an image (it must hold the diagonal), and each side's target spreads evenly
        over its true partners."""
        img = F.normalize(self.visual(pixel_values), dim=-1)
        txt = F.normalize(self.text(input_ids), dim=-1)
        logits = self.logit_scale() * img @ txt.t()
        if positives is None:
            target = torch.arange(len(logits), device=logits.device)
            return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        p = positives.float()
        return (F.cross_entropy(logits, p / p.sum(1, keepdim=True))
                + F.cross_entropy(logits.t(), p.t() / p.t().sum(1, keepdim=True))) / 2


def build_models(cfg, seed=0):
    """Freshly initialised models of a size (configs.py); the same seed gives the same weights."""
    torch.manual_seed(seed)
    return Generator(cfg["gpt"]), VQVAE(cfg["vq"]), CLIP(cfg["clip"])
