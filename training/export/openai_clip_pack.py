"""Export an OpenAI CLIP checkpoint (ViT-B/32, ViT-B/16, ViT-L/14…) into a model pack.

DALL·E reranks its samples with a CLIP trained apart from the generator; a pack does the same
when its `clip` section comes from a public checkpoint. With `--base`, the new pack keeps the
base pack's generator and decoder and takes the checkpoint's CLIP graphs, tokenizer,
preprocessing and templates; without it, the pack holds CLIP alone and serves classification
and embeddings only. The service loads either like any other pack:

    /usr/bin/python3 -m training.export.openai_clip_pack --checkpoint ViT-B-32.pt \\
        --bpe bpe_simple_vocab_16e6.txt.gz --out packs/openai-clip-vit-b-32 [--base packs/demo-shapes]

`--checkpoint` and `--bpe` are what training/upstream/openai_clip.py reads; both come from a
machine with internet, nothing is downloaded here. `python3 -m training.eval.openai_clip_reference`
then writes PyTorch's answers for checking the pack.
"""
import argparse
import json
import os
import shutil

import torch

from training.export.opset import OPSET, torchscript_exporter
from training.pack.manifest import SCHEMA_VERSION, file_entry, write_manifest
from training.upstream import openai_clip as oc

IMAGE_FILE, TEXT_FILE, TOKENIZER_FILE = "clip-image.onnx", "clip-text.onnx", "clip-tokenizer.json"


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
    vocab = oc.vocabulary(merges)
    if len(vocab) != model.text.token_embedding.num_embeddings:
        raise SystemExit(f"the merges file gives {len(vocab)} tokens, the checkpoint embeds "
                         f"{model.text.token_embedding.num_embeddings}: they do not belong together")
    return {
        "tokenizer": TOKENIZER_FILE,
        "context_length": context,
        "bos_id": vocab[oc.BOS],
        "eos_id": vocab[oc.EOS],
        # OpenAI's clip.tokenize pads with 0; the causal mask keeps padding out of the EOS state.
        "pad_id": 0,
        "embed_dim": model.visual.proj.shape[1],
        "logit_scale": round(float(model.logit_scale.exp()), 4),
        "graphs": {"image": IMAGE_FILE, "text": TEXT_FILE},
        "preprocess": {"size": size, "resize": "shortest_edge", "interpolation": "bicubic",
                       "mean": oc.MEAN, "std": oc.STD},
        "templates": oc.TEMPLATES,
    }


def write_clip(model, merges, out_dir):
    """The checkpoint's CLIP graphs and tokenizer into out_dir -> (the manifest's `clip` section,
    the files written)."""
    size, context = export_graphs(model, out_dir)
    with open(os.path.join(out_dir, TOKENIZER_FILE), "w") as f:
        json.dump(oc.tokenizer_json(merges), f, ensure_ascii=False)
    return clip_section(model, merges, size, context), [IMAGE_FILE, TEXT_FILE, TOKENIZER_FILE]


def export_pack(checkpoint, bpe, out, base=None, name=None, version=None):
    """Writes the pack `out`: the checkpoint's CLIP, beside `base`'s generator and decoder when a
    base is given, else alone (a pack that classifies and embeds but does not generate). Returns
    the manifest."""
    if os.path.exists(out):
        raise SystemExit(f"{out} exists; choose a new folder")
    model = oc.load_model(checkpoint)
    merges = oc.read_merges(bpe)
    checkpoint_name = os.path.splitext(os.path.basename(checkpoint))[0]
    os.makedirs(out)
    if base is None:
        manifest = {"schema_version": SCHEMA_VERSION, "name": name or f"openai-clip-{checkpoint_name.lower()}"[:64],
                    "version": version or checkpoint_name[:64],
                    "description": f"OpenAI CLIP {checkpoint_name} alone: zero-shot classification and embeddings, "
                                   "no generator."}
        kept = set()
    else:
        with open(os.path.join(base, "manifest.json")) as f:
            manifest = json.load(f)
        # Every file of the base but its CLIP's: external weight files go with the graphs that use them.
        base_clip_files = ({manifest["clip"]["tokenizer"], *manifest["clip"]["graphs"].values()}
                           if "clip" in manifest else set())
        generation_files = {manifest["generator"]["tokenizer"], manifest["decoder"]["graph"],
                            *manifest["generator"]["graphs"].values()}
        kept = generation_files | (set(manifest["files"]) - base_clip_files)
        for file in kept:
            shutil.copyfile(os.path.join(base, file), os.path.join(out, file))
        base_name, base_version = manifest["name"], manifest["version"]
        manifest["name"] = name or f"{base_name}-clip-{checkpoint_name.lower()}"[:64]
        manifest["version"] = version or f"{base_version}+clip.{checkpoint_name}"[:64]
        manifest["description"] = (f"The generator and decoder of {base_name} {base_version}, "
                                   f"reranked by OpenAI CLIP {checkpoint_name}.")
    manifest["clip"], clip_files = write_clip(model, merges, out)
    manifest["files"] = {n: file_entry(os.path.join(out, n)) for n in sorted(kept | set(clip_files))}
    write_manifest(out, manifest)
    return manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="OpenAI CLIP checkpoint: TorchScript archive, state dict, "
                                                            "or Hugging Face pytorch_model.bin / model.safetensors")
    parser.add_argument("--bpe", required=True,
                        help="bpe_simple_vocab_16e6.txt.gz from OpenAI's clip package, or merges.txt")
    parser.add_argument("--base", help="a pack whose generator and decoder the new pack keeps; without it the "
                                           "pack serves CLIP only (classification and embeddings)")
    parser.add_argument("--out", required=True, help="the new pack's folder (must not exist)")
    parser.add_argument("--name", help="pack name (default: <base>-clip-<checkpoint>, or openai-clip-<checkpoint>)")
    parser.add_argument("--version", help="pack version (default: <base version>+clip.<checkpoint>, or <checkpoint>)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    manifest = export_pack(args.checkpoint, args.bpe, args.out, args.base, args.name, args.version)
    clip = {k: manifest["clip"][k] for k in ("embed_dim", "context_length", "logit_scale")}
    print(json.dumps({"pack": args.out, "name": manifest["name"], "clip": clip}))


if __name__ == "__main__":
    main()
