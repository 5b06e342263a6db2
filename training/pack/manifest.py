"""Write a pack's manifest.json (packs/manifest.schema.json) next to its exported graphs."""
import argparse
import hashlib
import json
import os
import shutil

from training.model.configs import BOS_ID, EOS_ID, PAD_ID, PIXEL_MEAN, PIXEL_STD, TEMPLATES
from training.pack import memory
from training.world import phrasing

# The graphs' file names in a pack the exporters here write.
GRAPH_FILES = {
    "prefill": "generator-prefill.onnx",
    "step": "generator-step.onnx",
    "sample_loop": "generator-sample-loop.onnx",
    "kv_step": "generator-kv-step.onnx",
    "decoder": "decoder.onnx",
    "encoder": "encoder.onnx",
    "clip_image": "clip-image.onnx",
    "clip_text": "clip-text.onnx",
}
TOKENIZER_FILE = "tokenizer.json"
# 2: sample_loop takes top_k, temperature and top_p per row ([B]); 3: a manifest may state its
# weights' `license`; 4: an optional `encoder` graph, and sample_loop takes `keep` (forced
# tokens); 5: an optional `kv_step` graph (prefill and step over a cache the caller holds); see
# packs/CONTRACT.md.
SCHEMA_VERSION = 5


def write_manifest(pack_dir, doc):
    """manifest.json as every tool here writes it: indented, ending in a newline, a generating
    pack's memory figures measured on the graphs it names (training/pack/memory.py)."""
    doc = memory.with_memory(pack_dir, doc)
    with open(os.path.join(pack_dir, "manifest.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def file_entry(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "bytes": os.path.getsize(path)}


def manifest(name, version, description, gpt, vq, clip, logit_scale, sampling_defaults, with_loop,
             vocabulary=None, examples=None, with_encoder_graph=True):
    graphs = {"prefill": GRAPH_FILES["prefill"], "step": GRAPH_FILES["step"], "kv_step": GRAPH_FILES["kv_step"]}
    if with_loop:
        graphs["sample_loop"] = GRAPH_FILES["sample_loop"]
    doc = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "description": description,
        "geometry": {
            "text_length": gpt.text_length,
            "text_vocab_size": gpt.text_vocab_size,
            "image_grid": [gpt.grid, gpt.grid],
            "codebook_size": gpt.codebook_size,
            "image_size": [vq.image_size, vq.image_size],
            "image_token_offset": gpt.text_vocab_size,
        },
        "generator": {
            "tokenizer": TOKENIZER_FILE,
            "text_pad_id": PAD_ID,
            "layers": gpt.layers,
            "heads": gpt.heads,
            "head_dim": gpt.head_dim,
            "graphs": graphs,
            "sampling_defaults": sampling_defaults,
        },
        "decoder": {"graph": GRAPH_FILES["decoder"]},
        "clip": {
            "tokenizer": TOKENIZER_FILE,
            "context_length": clip.context_length,
            "bos_id": BOS_ID,
            "eos_id": EOS_ID,
            "pad_id": PAD_ID,
            "embed_dim": clip.embed_dim,
            "logit_scale": round(float(logit_scale), 4),
            "graphs": {"image": GRAPH_FILES["clip_image"], "text": GRAPH_FILES["clip_text"]},
            "preprocess": {"size": clip.image_size, "resize": "squash", "interpolation": "bicubic",
                           "mean": PIXEL_MEAN, "std": PIXEL_STD},
            "templates": TEMPLATES,
        },
    }
    if with_encoder_graph:
        doc = with_encoder(doc, GRAPH_FILES["encoder"])
    return with_words(doc, vocabulary, examples)


def with_encoder(doc, graph):
    """`doc` with `encoder` right after `decoder` (key order is what a reader of the file sees)."""
    out = {}
    for key, value in doc.items():
        if key != "encoder":
            out[key] = value
        if key == "decoder":
            out["encoder"] = {"graph": graph}
    return out


def with_words(doc, vocabulary, examples):
    """The words the pack was trained on, so the service can say which prompt words it never
    saw, and prompts that show it at its best (both optional)."""
    if vocabulary is not None:
        doc["vocabulary"] = sorted(set(vocabulary))
    if examples is not None:
        doc["examples"] = list(examples)
    return doc


def with_weights(doc, weight_format, source=None, graphs=None):
    """The weights' format (packs/CONTRACT.md, "Weight formats"); a manifest without it is float32."""
    weights = {"format": weight_format}
    if source is not None:
        weights["source"] = source
    if graphs is not None:
        weights["graphs"] = list(graphs)
    doc["weights"] = weights
    return doc


def write(pack_dir, tokenizer_path, **fields):
    """Copy the tokenizer in, then write manifest.json with every named file's checksum."""
    shutil.copyfile(tokenizer_path, os.path.join(pack_dir, TOKENIZER_FILE))
    doc = manifest(**fields)
    encoder = [doc["encoder"]["graph"]] if "encoder" in doc else []
    names = {TOKENIZER_FILE, doc["decoder"]["graph"], *encoder, *doc["generator"]["graphs"].values(),
             *doc["clip"]["graphs"].values()}
    doc["files"] = {n: file_entry(os.path.join(pack_dir, n)) for n in sorted(names)}
    write_manifest(pack_dir, doc)
    return doc


def write_words(pack_dir, vocabulary, examples):
    """Add (or replace) vocabulary and examples in a pack's manifest.json; the files and their
    checksums are untouched."""
    path = os.path.join(pack_dir, "manifest.json")
    with open(path) as f:
        doc = json.load(f)
    files = doc.pop("files")
    doc.pop("vocabulary", None)
    doc.pop("examples", None)
    doc = with_words(doc, vocabulary, examples)
    doc["files"] = files
    write_manifest(pack_dir, doc)


def write_memory(pack_dir):
    """Measure a pack's memory figures into its manifest (training/pack/memory.py); the rest as it was."""
    path = os.path.join(pack_dir, "manifest.json")
    with open(path) as f:
        write_manifest(pack_dir, json.load(f))
    with open(path) as f:
        return json.load(f).get("memory")


def main():
    parser = argparse.ArgumentParser(
        description="Write the words a pack was trained on and its example prompts into its manifest "
                    "(training.export.demo_pack does this on export). By default the current recipe's "
                    "(training/world/phrasing.py). With --memory, only its memory figures.")
    parser.add_argument("pack")
    parser.add_argument("--vocabulary", help="a JSON list of words, for a pack made by an earlier recipe")
    parser.add_argument("--examples", help="a JSON list of prompts")
    parser.add_argument("--memory", action="store_true",
                        help="measure what a candidate holds on the pack's graphs into its manifest "
                             "(every exporter here does this), leaving its words alone")
    args = parser.parse_args()
    if args.memory:
        print(json.dumps(write_memory(args.pack)))
        return

    def read(path, default):
        if not path:
            return default
        with open(path) as f:
            return json.load(f)

    write_words(args.pack, read(args.vocabulary, phrasing.vocabulary()), read(args.examples, phrasing.EXAMPLES))


if __name__ == "__main__":
    main()
