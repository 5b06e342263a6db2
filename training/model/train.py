"""Train the demo pack's three models on the shapes world's train split.

Usage: python3 -m training.model.train --run training/runs/demo [--device cuda] [--stages data,vqvae,clip,generator]
Stages (each resumable from training/runs/<run>/): data, vqvae (and its codes), clip, generator;
training.export.demo_pack exports the pack from the run.
"""
import argparse
import functools
import os

import numpy as np
import torch
import torch.nn.functional as F

from training.model import configs
from training.model.configs import PIXEL_MEAN, PIXEL_STD, pad_text
from training.model.models import CLIP, VQVAE, Generator
from training.model.trainer import Log, train
from training.world import claims, oracle, shapes
from training.world.bpe import Tokenizer

TOKENIZER = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "tokenizer", "shapes-bpe.json"))
DATA_SEED = 1

# Steps sized so that the whole recipe, evaluation included, fits in an hour on two shared
# CPU cores (30 minutes measured for pack 1.2.0, about 50 on a slower host: training/README.md).
# `pack` names the model sizes (configs.VARIANTS) and the pack written.
PROFILES = {
    "cpu": {"pack": "demo-shapes", "scenes": 48000, "vq_steps": 3000, "vq_batch": 32, "clip_steps": 4000,
            "clip_batch": 128, "gpt_steps": 7000, "gpt_batch": 32},
    # The larger variant on a GPU: more scenes and, for the many phrasings, many more steps.
    "cuda": {"pack": "demo-shapes-large", "scenes": 100000, "vq_steps": 6000, "vq_batch": 128,
             "clip_steps": 10000, "clip_batch": 512, "gpt_steps": 30000, "gpt_batch": 256},
    # A few steps of everything at the larger variant's sizes, to check that path end to end.
    "smoke": {"pack": "demo-shapes-large", "scenes": 512, "vq_steps": 3, "vq_batch": 8, "clip_steps": 3,
              "clip_batch": 8, "gpt_steps": 3, "gpt_batch": 8},
}


def to_pixels(images_uint8, device):
    return torch.from_numpy(images_uint8).to(device).permute(0, 3, 1, 2).float() / 255.0


def clip_pixels(images_uint8, device):
    x = to_pixels(images_uint8, device)
    mean = torch.tensor(PIXEL_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def load_data(run_dir, scenes, log):
    path = os.path.join(run_dir, "data.npz")
    if not os.path.exists(path):
        images, _, scene_list = shapes.make_dataset(scenes, DATA_SEED, "train")
        np.savez(path, images=images, scenes=claims.scene_rows(scene_list))
        log(stage="data", scenes=scenes)
    data = np.load(path)
    return data["images"], data["scenes"]


def sampler(n, batch, seed):
    rng = np.random.default_rng(seed)
    return lambda: rng.integers(0, n, batch)


def sizes(profile):
    return configs.VARIANTS[profile["pack"]]


def train_vqvae(images, profile, device, run_dir, log):
    torch.manual_seed(0)
    model = VQVAE(sizes(profile)["vq"]).to(device)
    with torch.no_grad():  # start the codebook on real latents so no code starts dead
        latents = model.encode_latents(to_pixels(images[:512], device)).reshape(-1, model.config.code_dim)
        picks = latents[torch.randperm(len(latents))[: model.config.codebook_size]]
        model.codebook.copy_(picks)
        model.ema_sum.copy_(picks)
    draw = sampler(len(images), profile["vq_batch"], 10)

    def batch(step):
        x = to_pixels(images[draw()], device)
        recon, tokens, commitment = model(x)
        mse = F.mse_loss(recon, x)
        used = tokens.unique().numel()
        return mse + 0.25 * commitment, {"mse": mse.item(), "codes_in_batch": used}

    return train("vqvae", model, batch, profile["vq_steps"], 2e-3, run_dir, log, warmup=50)


def encode_codes(vqvae, images, device, run_dir, log):
    path = os.path.join(run_dir, "codes.npy")
    if not os.path.exists(path):
        chunks = [vqvae.encode(to_pixels(images[i:i + 512], device)).cpu().numpy()
                  for i in range(0, len(images), 512)]
        codes = np.concatenate(chunks)
        np.save(path, codes)
        log(stage="codes", distinct=int(len(np.unique(codes))), **round_trip(vqvae, device))
    return np.load(path)


def decode_codes(vqvae, codes, device):
    """uint8 NHWC images of codes (an array or a tensor), as the pack's decoder graph makes them."""
    chunks = []
    with torch.no_grad():
        for i in range(0, len(codes), 512):
            x = vqvae.decode(torch.as_tensor(codes[i:i + 512]).to(device))
            chunks.append((x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(chunks)


def round_trip(vqvae, device, count=240):
    """How many held-out scenes the oracle still recognises after encode -> decode: the
    ceiling for any generated image."""
    images, _, scenes = shapes.make_dataset(count, DATA_SEED + 100, "heldout")
    with torch.no_grad():
        decoded = vqvae.decode(vqvae.encode(to_pixels(images, device)))
    pixels = (decoded * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return {"round_trip_match": float(np.mean([oracle.judge(p, s) for p, s in zip(pixels, scenes)]))}


def colour_groups(images):
    """For each palette colour, the images that show it (object interiors are exact)."""
    groups = []
    for rgb in shapes.COLOURS.values():
        present = (images == np.array(rgb, dtype=np.uint8)).all(-1).reshape(len(images), -1).any(-1)
        groups.append(np.flatnonzero(present))
    return groups


class Captions:
    """Fresh captions for each batch, in the many phrasings of phrasing.py, with the claim
    each makes; with partial_rate, a partial one instead ("a square", "something red").
    A caption longer than the text length is drawn again, so none is ever cut short."""

    def __init__(self, seed, length, bos_eos, partial_rate=0.0):
        self.rng, self.tokenizer, self.ids = np.random.default_rng(seed), Tokenizer.load(TOKENIZER), {}
        self.length, self.bos_eos, self.partial_rate = length, bos_eos, partial_rate
        self.room = length - 2 if bos_eos else length

    def draw(self, row, colourless=False):
        while True:
            if colourless:
                text, claim = claims.partial_caption(row, self.rng, colourless=True)
            elif self.rng.random() < self.partial_rate:
                text, claim = claims.partial_caption(row, self.rng)
            else:
                text, claim = claims.full_caption(row, self.rng)
            if text not in self.ids:
                ids = self.tokenizer.encode(text)
                self.ids[text] = pad_text(ids, self.length, self.bos_eos) if len(ids) <= self.room else None
            if self.ids[text] is not None:
                return self.ids[text], claim

    def __call__(self, rows, colourless=None):
        colourless = np.zeros(len(rows), bool) if colourless is None else colourless
        ids, claim_rows = zip(*[self.draw(row, no_colour) for row, no_colour in zip(rows, colourless)])
        return np.array(ids, dtype=np.int64), np.stack(claim_rows)


# How often CLIP gets a partial caption ("a square", "something red") instead of a full one.
CLIP_PARTIAL_RATE = 0.3
# How many of CLIP's images show their objects in other colours, random ones far from every
# palette colour, with a caption that names no colour ("a large circle"): the image tower must
# then tell shapes apart whatever their colour, rather than read shape through colour (every
# yellow thing in the train split is a circle, a triangle or a cross, so a yellow square "is"
# one of those), which is what fails on a colour-shape pair never seen. No palette colour is
# ever given to a shape it is not seen with, so the held-out pairs stay unseen.
CLIP_RECOLOUR_RATE = 0.25
# How many of CLIP's images are the image tokenizer's reconstruction of the scene rather than
# the rendering: CLIP reranks decoded images, whose edges and flat colours the decoder only
# approximates, and an image tower that saw nothing but exact renderings reads those artefacts
# as other shapes (a decoded scene of two objects lost to one of them alone in 14-18% of
# scenes, against none rendered).
CLIP_DECODED_RATE = 0.5
_PALETTE = np.array(list(shapes.COLOURS.values()), np.float32)
_BACKGROUND = np.array(shapes.BACKGROUND, np.float32)


def off_palette_colour(rng):
    """A colour far from every palette colour and from the background."""
    while True:
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        if np.linalg.norm(_PALETTE - colour, axis=1).min() > 90 and np.linalg.norm(colour - _BACKGROUND) > 120:
            return colour


def recolour(images_uint8, scene_rows, rng):
    """Each object's colour replaced by an off-palette one, anti-aliased edges kept: a pixel is
    the background plus a fraction of (object colour - background), and keeps its fraction."""
    out = images_uint8.astype(np.float32)
    for i, row in enumerate(scene_rows):
        offset = out[i] - _BACKGROUND
        colours = [int(row[1 + 3 * j]) for j in range(row[0])]
        fractions, misfits = [], []
        for colour in colours:
            direction = _PALETTE[colour] - _BACKGROUND
            fraction = np.clip((offset @ direction) / (direction @ direction), 0, 1)
            fractions.append(fraction)
            misfits.append(np.linalg.norm(offset - fraction[..., None] * direction, axis=-1))
        owner = np.argmin(np.stack(misfits), 0)  # which object a pixel belongs to
        targets = {colour: off_palette_colour(rng) for colour in sorted(set(colours))}
        recoloured = np.zeros_like(offset)
        for j, colour in enumerate(colours):
            mine = owner == j
            recoloured[mine] = fractions[j][mine][:, None] * (targets[colour] - _BACKGROUND)
        out[i] = _BACKGROUND + recoloured
    return np.round(out).clip(0, 255).astype(np.uint8)


def clip_captions(seed, cfg=configs.DEMO, partial_rate=CLIP_PARTIAL_RATE):
    return Captions(seed, cfg["clip"].context_length, True, partial_rate=partial_rate)


def generator_captions(seed, cfg=configs.DEMO):
    return Captions(seed, cfg["gpt"].text_length, False)


def clip_examples(images, scene_rows, captions, recoloured, rng):
    """A CLIP batch: the images (the recoloured ones in off-palette colours), caption ids (a
    recoloured image's names no colour) and the truth table [image, caption], where no palette
    colour is true of a recoloured image."""
    rows, shown = scene_rows.copy(), images.copy()
    ids, claim_rows = captions(rows, recoloured)
    shown[recoloured] = recolour(shown[recoloured], rows[recoloured], rng)
    rows[np.ix_(recoloured, [1, 4])] = claims.NO_COLOUR
    return shown, ids, claims.truth(claim_rows, rows).T


def train_clip(images, decoded, scene_rows, profile, device, run_dir, log, partial_rate=CLIP_PARTIAL_RATE,
               recolour_rate=CLIP_RECOLOUR_RATE, decoded_rate=CLIP_DECODED_RATE, after_step=None, config=None):
    """`decoded()`: each scene of `images` through the image tokenizer (decode_codes), called
    once and only if CLIP still has to train (a finished run's clip.pt is loaded instead)."""
    decoded = functools.cache(decoded)
    torch.manual_seed(1)
    model = CLIP(config or sizes(profile)["clip"]).to(device)
    draw, rng = sampler(len(images), profile["clip_batch"], 11), np.random.default_rng(13)
    pick_rng, colour_rng = np.random.default_rng(16), np.random.default_rng(17)
    groups, captions = colour_groups(images), clip_captions(14, sizes(profile), partial_rate)

    def batch(step):
        # Colour alone separates most of a random batch; every other batch shares one
        # colour, so telling captions apart takes shape, size and position.
        if step % 2:
            group = groups[rng.integers(len(groups))]
            idx = rng.choice(group, profile["clip_batch"], replace=False)
        else:
            idx = draw()
        recoloured = pick_rng.random(len(idx)) < recolour_rate
        reconstructed = (pick_rng.random(len(idx)) < decoded_rate)[:, None, None, None]
        source = np.where(reconstructed, decoded()[idx], images[idx])
        shown, ids, truth = clip_examples(source, scene_rows[idx], captions, recoloured, colour_rng)
        positives = torch.from_numpy(truth.copy()).to(device)
        pixels = clip_pixels(shown, device)
        loss = model(pixels, torch.from_numpy(ids).to(device), positives)
        return loss, {"logit_scale": model.logit_scale().item(),
                      "positives_per_image": positives.float().sum(1).mean().item()}

    return train("clip", model, batch, profile["clip_steps"], 1.5e-3, run_dir, log, warmup=50, weight_decay=0.1,
                 after_step=after_step and (lambda step: after_step(step, model)))


def train_generator(codes, scene_rows, profile, device, run_dir, log):
    torch.manual_seed(2)
    model = Generator(sizes(profile)["gpt"]).to(device)
    draw, captions = sampler(len(codes), profile["gpt_batch"], 12), generator_captions(15, sizes(profile))
    k = model.config.codebook_size

    def batch(step):
        idx = draw()
        text = torch.from_numpy(captions(scene_rows[idx])[0]).to(device)
        image = torch.from_numpy(codes[idx]).to(device)
        logits = model(text, image)
        return F.cross_entropy(logits.reshape(-1, k), image.reshape(-1)), {}

    return train("generator", model, batch, profile["gpt_steps"], 1.5e-3, run_dir, log, warmup=100, weight_decay=0.1)


STAGES = ("data", "vqvae", "clip", "generator")


def profile_for(device, profile_name=None):
    """The named profile, else the device's: cuda on a GPU."""
    return profile_name or ("cuda" if device.startswith("cuda") else "cpu")


def run(run_dir, device, stages, profile_name=None):
    """Runs the named stages and returns the models they made, by name; a later stage loads
    what earlier ones saved in run_dir, and a finished one is loaded, not trained again. After
    vqvae, generator and clip are independent, so two processes may run them side by side."""
    os.makedirs(run_dir, exist_ok=True)
    profile, log = PROFILES[profile_for(device, profile_name)], Log(run_dir)
    images, scene_rows = load_data(run_dir, profile["scenes"], log)
    # Every later stage needs the image tokenizer: the generator trains on its codes, CLIP
    # on its reconstructions too.
    if set(stages) == {"data"}:
        return {}
    vqvae = train_vqvae(images, profile, device, run_dir, log)
    codes = encode_codes(vqvae, images, device, run_dir, log)
    models = {"vqvae": vqvae}
    if "generator" in stages:
        models["generator"] = train_generator(codes, scene_rows, profile, device, run_dir, log)
    if "clip" in stages:
        models["clip"] = train_clip(images, lambda: decode_codes(vqvae, codes, device), scene_rows, profile, device,
                                    run_dir, log)
    return models


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", default="training/runs/demo")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated, from " + ", ".join(STAGES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", choices=sorted(PROFILES), help="steps and batch sizes; default by device")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run(args.run, args.device, args.stages.split(","), args.profile)


if __name__ == "__main__":
    main()
