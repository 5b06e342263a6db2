"""The shipped packs' model sizes, and the inputs their models take (special ids, text padding,
pixel normalisation, zero-shot templates) as the manifest records them; the geometry is fixed
by packs/CONTRACT.md."""
from training.model.models import CLIPConfig, GPTConfig, VQConfig

# The shapes tokenizer's special tokens (training/world/bpe.py), ids 0 to 2.
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
PIXEL_MEAN = [0.5, 0.5, 0.5]
PIXEL_STD = [0.5, 0.5, 0.5]
# CLIP's zero-shot templates, phrased like the world's captions.
TEMPLATES = ["a {}", "there is a {}", "an image of a {}", "a {} on a plain background"]


def pad_text(ids, length, bos_eos=False):
    """Generator text (no specials, right-padded) or CLIP text (BOS ids EOS, then pad)."""
    if bos_eos:
        ids = [BOS_ID] + ids[: length - 2] + [EOS_ID]
    ids = ids[:length]
    return ids + [PAD_ID] * (length - len(ids))


# Half the least distance of a palette colour from the background (cyan's), in CLIP's normalised
# pixel units (mean 0.5, std 0.5): an object's interior always reaches it, decoder noise does not.
SHAPE_MASK_THRESHOLD = 0.8

DEMO = {
    "gpt": GPTConfig(text_vocab_size=512, text_length=24, codebook_size=256, grid=8,
                     width=128, layers=4, heads=4),
    "vq": VQConfig(image_size=64, grid=8, codebook_size=256, code_dim=32, hidden=128),
    "clip": CLIPConfig(image_size=64, patch=8, vision_width=64, vision_layers=2,
                       text_vocab_size=512, context_length=32, text_width=64, text_layers=2,
                       heads=4, embed_dim=64, stem_channels=32, shape_mask_threshold=SHAPE_MASK_THRESHOLD),
}

# The larger variant, for a GPU (train.py's `cuda` profile): the same geometry, so the same
# data, tokenizer and serving path, with a generator and CLIP about 8x and 4x the demo's.
# Each generator graph holds its own copy of the weights, so it is not for the repository.
DEMO_LARGE = {
    "gpt": GPTConfig(text_vocab_size=512, text_length=24, codebook_size=256, grid=8,
                     width=256, layers=8, heads=8),
    "vq": DEMO["vq"],
    "clip": CLIPConfig(image_size=64, patch=8, vision_width=128, vision_layers=4,
                       text_vocab_size=512, context_length=32, text_width=128, text_layers=4,
                       heads=4, embed_dim=128, stem_channels=32, shape_mask_threshold=SHAPE_MASK_THRESHOLD),
}

# The demo packs by name: the committed one and the larger variant.
VARIANTS = {"demo-shapes": DEMO, "demo-shapes-large": DEMO_LARGE}

# DALL·E 1's geometry at a tiny width, so the serving code runs at real sizes; the CLIP
# side mimics ViT-B/32's input (224 px, patch 32, context 77).
MICRO = {
    "gpt": GPTConfig(text_vocab_size=16384, text_length=256, codebook_size=8192, grid=32,
                     width=16, layers=1, heads=2),
    "vq": VQConfig(image_size=256, grid=32, codebook_size=8192, code_dim=16, hidden=16),
    "clip": CLIPConfig(image_size=224, patch=32, vision_width=32, vision_layers=1,
                       text_vocab_size=512, context_length=77, text_width=32, text_layers=1,
                       heads=2, embed_dim=32),
}

SAMPLING_DEFAULTS = {"top_k": 32, "temperature": 1.0, "top_p": 1.0}

# Every pack made from these sizes, by its manifest's name.
BY_PACK = {**VARIANTS, "micro-dalle1": MICRO}
