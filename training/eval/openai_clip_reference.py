"""OpenAI CLIP's answers by OpenAI's own algorithms, for checking an exported pack.

    /usr/bin/python3 -m training.eval.openai_clip_reference --checkpoint ViT-B-32.pt \\
        --bpe bpe_simple_vocab_16e6.txt.gz --pack packs/openai-clip-vit-b-32 --out reference.json
    npm run check-clip -- packs/openai-clip-vit-b-32 reference.json

Writes OpenAI's token ids for awkward texts (OpenAI's tokenizer algorithm, re-implemented in
`reference_encode`) and PyTorch's text and image embeddings of the checkpoint, framed as the
pack's manifest says; src/cli/check-clip.ts requires the pack to give the same.
"""
import argparse
import base64
import html
import io
import json
import os

import numpy as np
import regex
import torch
from PIL import Image

from training.upstream import openai_clip as oc
from training.world.bpe import bytes_to_unicode


def reference_encode(text, merges):
    """OpenAI's SimpleTokenizer.encode without ftfy's repairs and without its special-token
    alternatives. It unescapes HTML entities as OpenAI does; the service does not (by choice)."""
    vocab = oc.vocabulary(merges)
    ranks = {pair: i for i, pair in enumerate(merges)}
    byte_map = bytes_to_unicode()
    text = regex.sub(r"\s+", " ", html.unescape(html.unescape(text)).strip()).strip().lower()
    ids = []
    for word in regex.findall(oc.WORD_PATTERN, text, regex.IGNORECASE):
        parts = [byte_map[b] for b in word.encode("utf-8")]
        parts[-1] += "</w>"
        while len(parts) > 1:
            pairs = [(ranks.get((a, b), len(ranks)), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, i = min(pairs)
            if rank == len(ranks):
                break
            parts = oc.merge_pair(parts, (parts[i], parts[i + 1]))
        ids.extend(vocab[p] for p in parts)
    return ids


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the OpenAI CLIP checkpoint the pack was exported from")
    parser.add_argument("--bpe", required=True, help="its merges file (bpe_simple_vocab_16e6.txt.gz or merges.txt)")
    parser.add_argument("--pack", required=True, help="the exported pack, whose manifest frames the texts and image")
    parser.add_argument("--out", required=True, help="the reference file, for `npm run check-clip -- PACK FILE`")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with open(os.path.join(args.pack, "manifest.json")) as f:
        clip = json.load(f)["clip"]
    reference = reference_outputs(oc.load_model(args.checkpoint), oc.read_merges(args.bpe), clip)
    with open(args.out, "w") as f:
        json.dump(reference, f)


if __name__ == "__main__":
    main()
