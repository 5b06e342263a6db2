"""Reference outputs of a pack computed by PyTorch, for the onnxruntime parity tests.

Usage: python3 -m training.eval.reference packs/demo-shapes [test/fixtures/reference]
Writes <pack>.json and the PNG files it names. Weights come from the pack's own graphs
(training/pack/weights.py), so the fixtures always describe the committed files.
"""
import argparse
import json
import os

import numpy as np
import torch
from PIL import Image

from training.export.graphs import PixelEncoder
from training.model.configs import pad_text
from training.pack.weights import load_pack
from training.world.bpe import Tokenizer

PROMPTS = ["a large red circle", "a small blue square to the left of a green triangle"]
CLIP_TEXTS = ["a red circle.", "a photo of a cyan cross.", "a blue square above a yellow triangle"]
STEPS = 3
DIGITS = 6


def rounded(tensor):
    return np.round(tensor.detach().double().numpy(), DIGITS).tolist()


def token_path(batch, steps, codebook_size):
    return [[(37 * k + 11 * b + 5) % codebook_size for k in range(steps)] for b in range(batch)]


def generator_reference(generator, manifest, tokenizer, batch):
    g = manifest["geometry"]
    ids = [pad_text(tokenizer.encode(p), g["text_length"]) for p in PROMPTS[:batch]]
    path = token_path(batch, STEPS, g["codebook_size"])
    with torch.no_grad():
        logits, kv = generator.prefill(torch.tensor(ids))
        steps = []
        for k in range(STEPS):
            token = torch.tensor([[row[k]] for row in path])
            step_logits, kv = generator.step(token, kv)
            steps.append(rounded(step_logits))
    return {"prompts": PROMPTS[:batch], "text_tokens": ids, "prefill_logits": rounded(logits),
            "step_tokens": path, "step_logits": steps}


def decoder_reference(vqvae, manifest, out_dir, name):
    (rows, cols), k = manifest["geometry"]["image_grid"], manifest["geometry"]["codebook_size"]
    n = rows * cols
    grids = [[(7 * i + 3) % k for i in range(n)], [(i // cols + i % cols) % k for i in range(n)]]
    entries = []
    with torch.no_grad():
        x = vqvae.decode(torch.tensor(grids))
        pixels = (x * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i, (grid, image) in enumerate(zip(grids, pixels)):
        png = f"{name}-decoded-{i}.png"
        Image.fromarray(image).save(os.path.join(out_dir, png))
        entries.append({"image_tokens": grid, "png": png})
    return entries


def encoder_reference(vqvae, manifest, out_dir, name):
    """Codes PyTorch's encoder gives fixed images at the decoder's size (the pack's encoder graph)."""
    height, width = manifest["geometry"]["image_size"]
    entries = []
    for i, image in enumerate(clip_images(height)):
        png = f"{name}-encoder-{i}.png"
        Image.fromarray(image).save(os.path.join(out_dir, png))
        with torch.no_grad():
            tokens = PixelEncoder(vqvae)(torch.from_numpy(image[None]))
        entries.append({"png": png, "image_tokens": tokens[0].tolist()})
    return entries


def clip_images(size):
    """A few fixed RGB images already at CLIP's input size, so no resize is involved."""
    y, x = np.mgrid[0:size, 0:size] / max(1, size - 1)
    gradient = np.stack([x, y, 1 - x], -1) * 255
    disc = np.where(((x - 0.4) ** 2 + (y - 0.55) ** 2 < 0.08)[..., None], [220, 30, 30], [235, 235, 235])
    checker = np.where(((np.floor(x * 8) + np.floor(y * 8)) % 2 == 0)[..., None], [30, 70, 220], [240, 210, 20])
    return [np.clip(np.rint(a), 0, 255).astype(np.uint8) for a in (gradient, disc, checker)]


def clip_reference(clip, manifest, tokenizer, out_dir, name):
    pre = manifest["clip"]["preprocess"]
    mean, std = np.array(pre["mean"]), np.array(pre["std"])
    images = []
    for i, image in enumerate(clip_images(pre["size"])):
        png = f"{name}-clip-{i}.png"
        Image.fromarray(image).save(os.path.join(out_dir, png))
        x = ((image / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
        with torch.no_grad():
            images.append({"png": png, "image_embeds": rounded(clip.visual(torch.from_numpy(x))[0])})
    texts = []
    for text in CLIP_TEXTS:
        ids = pad_text(tokenizer.encode(text), manifest["clip"]["context_length"], bos_eos=True)
        with torch.no_grad():
            texts.append({"text": text, "input_ids": ids, "text_embeds": rounded(clip.text(torch.tensor([ids]))[0])})
    return images, texts


def write(pack_dir, out_dir):
    torch.set_num_threads(2)
    manifest, generator, vqvae, clip, _ = load_pack(pack_dir)
    name = manifest["name"]
    tokenizer = Tokenizer.load(os.path.join(pack_dir, manifest["generator"]["tokenizer"]))
    os.makedirs(out_dir, exist_ok=True)
    # One candidate for the big micro pack keeps its fixture small (8192 logits a row).
    batch = 1 if manifest["geometry"]["codebook_size"] > 1024 else 2
    clip_image, clip_text = clip_reference(clip, manifest, tokenizer, out_dir, name)
    doc = {
        "pack": name,
        "files": {f: entry["sha256"] for f, entry in manifest["files"].items()},
        "tolerance": {"logits": 1e-3, "embeds": 1e-3, "pixels": 1},
        "generator": generator_reference(generator, manifest, tokenizer, batch),
        "decoder": decoder_reference(vqvae, manifest, out_dir, name),
        **({"encoder": encoder_reference(vqvae, manifest, out_dir, name)} if "encoder" in manifest else {}),
        "clip_image": clip_image,
        "clip_text": clip_text,
    }
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pack")
    parser.add_argument("out", nargs="?", default="test/fixtures/reference")
    args = parser.parse_args()
    write(args.pack, args.out)
