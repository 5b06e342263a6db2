"""Export minDALL-E (Kakao Brain) into a model pack.

    /usr/bin/python3 -m training.export.mindalle_pack --checkpoint 1.3B --out packs/mindalle-1.3b \\
        [--clip-checkpoint ViT-B-32.pt --clip-bpe bpe_simple_vocab_16e6.txt.gz] [--fp16] [--external-data]

`--checkpoint` is the folder of upstream's release (`1.3B.tar.gz` unpacked): `config.yaml`,
`stage1_last.ckpt` (VQGAN), `stage2_last.ckpt` (GPT) and `tokenizer/bpe-16k-{vocab.json,merges.txt}`.
Checkpoints are read for their tensors only (training/upstream/safe_pickle.py). The pack gets prefill,
step and sample_loop (training/export/sample_loop.py, per-row sampling settings), the decoder (codebook
lookup → post-quant conv → VQGAN decoder → uint8), the encoder that completes images (uint8 → VQGAN
encoder → quant conv → nearest code, as upstream's `VQGAN.get_codes`), the tokenizer as a tokenizer.json
(training/upstream/mindalle_tokenizer.py) and, from `--clip-*`, OpenAI CLIP for reranking
(training/export/openai_clip_pack.py). Without `--clip-*` the folder lacks the CLIP every servable pack has:
finish it with `python3 -m training.export.openai_clip_pack --base OUT --out FINAL ...`.

`--fp16` stores the weights as float16 with a Cast to float32 in the graph (half the files; the
arithmetic and the contract's tensors stay float32), except the encoder's: its codes are an argmin
over distances that float16 weights would move, and it is a small part of the pack. The generator's
graphs keep their weights in one shared file (`generator.weights`, ONNX external data) when they
would pass protobuf's 2 GB, or with `--external-data`: prefill, step and sample_loop then point at
the same bytes.
"""
import argparse
import json
import os
import shutil
import tempfile

import numpy as np
import onnx
import torch
import yaml
from onnx import TensorProto, helper, numpy_helper

from training.export import openai_clip_pack, sample_loop, weight_layout
from training.export.graphs import KvStep, LoopStep, Prefill, Step, kv_step_export, loop_step_export
from training.export.opset import OPSET, torchscript_exporter
from training.pack.manifest import GRAPH_FILES, SCHEMA_VERSION, file_entry, write_manifest
from training.upstream import mindalle_tokenizer as tok
from training.upstream import openai_clip as oc
from training.upstream import safe_pickle
from training.upstream.mindalle import Stage1Decoder, Stage1Encoder, Stage2

LICENSE = "CC-BY-NC-SA-4.0 (minDALL-E weights, Kakao Brain; code Apache-2.0)"
TOKENIZER_FILE, WEIGHTS_FILE = "tokenizer.json", "generator.weights"
# Besides tensors, a Lightning checkpoint may pickle its hyper-parameters (OmegaConf) and trainer state.
STAND_IN_PACKAGES = ("omegaconf", "pytorch_lightning", "lightning_fabric", "typing", "pathlib", "argparse")
PROTOBUF_LIMIT = 2 ** 31 - 1
# Upstream's sampling defaults (dalle/models/__init__.py: top_k 256, temperature 1; no top_p).
SAMPLING_DEFAULTS = {"top_k": 256, "temperature": 1.0}
STAGE1_DEFAULTS = {"double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                   "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [16], "pdrop": 0.0}


def read_release(folder):
    """(config, stage-1 tensors, stage-2 tensors, vocab, merges) from upstream's release folder."""
    def path(*parts):
        p = os.path.join(folder, *parts)
        if not os.path.exists(p):
            raise SystemExit(f"{p} is missing: --checkpoint is the unpacked minDALL-E release folder")
        return p

    with open(path("config.yaml")) as f:
        config = yaml.safe_load(f)
    stage1 = safe_pickle.load_state_dict(path("stage1_last.ckpt"), STAND_IN_PACKAGES)
    stage2 = safe_pickle.load_state_dict(path("stage2_last.ckpt"), STAND_IN_PACKAGES)
    vocab = tok.read_vocab(path("tokenizer", "bpe-16k-vocab.json"))
    merges = tok.read_merges(path("tokenizer", "bpe-16k-merges.txt"))
    return config, stage1, stage2, vocab, merges


def build_models(config, stage1, stage2):
    hp2 = config["stage2"].get("hparams", {})
    gpt = Stage2.from_state(stage2, heads=hp2.get("n_heads", 24), approximate_gelu=hp2.get("gelu_use_approx", False))
    hparams = {**STAGE1_DEFAULTS, **config["stage1"].get("hparams", {})}
    vqgan = Stage1Decoder.from_state(stage1, hparams)
    # The codebook is one tensor in both: build_on_state makes it the parameter, not a copy.
    encoder = Stage1Encoder.from_state(stage1, hparams)
    if vqgan.grid ** 2 != gpt.image_tokens:
        raise SystemExit(f"stage 1 decodes a {vqgan.grid}×{vqgan.grid} grid, stage 2 samples {gpt.image_tokens} tokens")
    if vqgan.quantize.embedding.num_embeddings != gpt.tok_emb_img.num_embeddings:
        raise SystemExit("stage 1's codebook and stage 2's image vocabulary differ in size")
    return gpt, vqgan, encoder


# --- ONNX ---

def _export(module, args, path, inputs, outputs, dynamic_axes, export_params=True):
    with torch.no_grad():
        torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs, dynamic_axes=dynamic_axes,
                          opset_version=OPSET, do_constant_folding=False, export_params=export_params,
                          **torchscript_exporter())


def weights_to_fp16(model, min_elements=1024, base_dir=None):
    """Float initializers of `min_elements` or more as float16, each behind a Cast to float32.
    One kept in external data (under `base_dir`) is converted one tensor at a time into a file
    beside its own."""
    casts = []
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            name = init.name
            ref = sample_loop.external_ref(init)
            if ref is None:
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name + "/fp16"))
            else:
                raw = sample_loop.tensor_bytes(init, base_dir)
                half = np.frombuffer(raw, dtype=np.float32).astype(np.float16).tobytes()
                location = ref[0] + ".fp16"
                with open(os.path.join(base_dir, location), "wb") as f:
                    f.write(half)
                init.name, init.data_type = name + "/fp16", TensorProto.FLOAT16
                sample_loop.set_external(init, location, 0, len(half))
            casts.append(helper.make_node("Cast", [name + "/fp16"], [name], to=TensorProto.FLOAT, name="cast/" + name))
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(casts + nodes)
    return model


def save_sharing_weights(models, out_dir, data_file=WEIGHTS_FILE, min_bytes=1024, base_dir=None):
    """Saves {file name: ModelProto} with every large initializer in one external-data file,
    each distinct tensor stored once (4 KiB aligned) and referenced by all graphs that use it.
    Initializers already in external data (under `base_dir`) are read one at a time."""
    stored, known = {}, {}  # content key -> (offset, length); external reference -> content key
    with open(os.path.join(out_dir, data_file), "wb") as data:
        for name, model in models.items():
            for init in model.graph.initializer:
                ref = sample_loop.external_ref(init)
                key = known.get((init.data_type, tuple(init.dims), ref)) if ref else None
                if key is None:
                    raw = sample_loop.tensor_bytes(init, base_dir)
                    if len(raw) < min_bytes:
                        if ref:  # small enough to live in the graph
                            dims, dtype, tensor_name = list(init.dims), init.data_type, init.name
                            init.Clear()
                            init.name, init.data_type, init.raw_data = tensor_name, dtype, raw
                            init.dims.extend(dims)
                        continue
                    key = sample_loop.content_key(init, raw)
                    if ref:
                        known[(init.data_type, tuple(init.dims), ref)] = key
                    if key not in stored:
                        data.write(b"\0" * (-data.tell() % 4096))
                        stored[key] = (data.tell(), len(raw))
                        data.write(raw)
                sample_loop.set_external(init, data_file, *stored[key])
            onnx.save(model, os.path.join(out_dir, name))


def _export_graph(module, args, path, inputs, outputs, dynamic_axes, weights_dir):
    """The module's graph with its parameters as initializers: in the graph, or, when they pass
    protobuf's 2 GB, as external data with one file per tensor in `weights_dir`, written once
    for all the graphs that use it (torch would write each graph's own copy)."""
    _export(module, args, path, inputs, outputs, dynamic_axes, export_params=False)
    model = onnx.load(path)
    params = module.state_dict()  # the graph's parameter inputs carry these names
    used = [value.name for value in model.graph.input if value.name in params]
    spill = sum(params[n].numel() * params[n].element_size() for n in used) > PROTOBUF_LIMIT
    for name in used:
        tensor = params[name].contiguous()
        if not spill:
            model.graph.initializer.append(numpy_helper.from_array(tensor.numpy(), name))
            continue
        location = os.path.join(os.path.basename(weights_dir), name)
        if not os.path.exists(os.path.join(weights_dir, name)):
            with open(os.path.join(weights_dir, name), "wb") as f:
                f.write(tensor.numpy().data)
        init = model.graph.initializer.add()
        init.name, init.data_type = name, onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[tensor.numpy().dtype]
        init.dims.extend(tensor.shape)
        sample_loop.set_external(init, location, 0, tensor.numel() * tensor.element_size())
    kept = [value for value in model.graph.input if value.name not in params]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return model, spill


def export_generator(gpt, out_dir, fp16=False, external=None):
    """prefill, step, sample_loop and kv_step into out_dir; returns the files written.

    Over 2 GB, the weights go to one file per tensor in a work folder (_export_graph) and are
    read back one at a time (fp16, deduplication, the shared file), so they are held in memory
    by the module alone, except while torch traces: its tracer clones every parameter
    (torch.jit._trace.ONNXTracedModule), so the peak is twice the weights for that moment."""
    work = tempfile.mkdtemp(dir=out_dir)
    try:
        weights = os.path.join(work, "weights")
        os.makedirs(weights)
        text = torch.zeros(2, gpt.text_length, dtype=torch.long)
        prefill, prefill_spilled = _export_graph(
            Prefill(gpt), (text,), os.path.join(work, "prefill.onnx"), ["text_tokens"], ["logits", "present_kv"],
            {"text_tokens": {0: "B"}, "logits": {0: "B"}, "present_kv": {2: "B"}}, weights)
        with torch.no_grad():
            _, kv = gpt.prefill(text)
        step, step_spilled = _export_graph(
            Step(gpt), (torch.zeros(2, 1, dtype=torch.long), kv), os.path.join(work, "step.onnx"),
            ["image_token", "past_kv"], ["logits", "present_kv"],
            {"image_token": {0: "B"}, "past_kv": {2: "B", 4: "P"}, "logits": {0: "B"},
             "present_kv": {2: "B", 4: "P_next"}}, weights)
        args, inputs, outputs, axes = loop_step_export(kv, gpt.text_length)  # sample_loop's body
        body, body_spilled = _export_graph(
            LoopStep(gpt), args, os.path.join(work, "loop-step.onnx"), inputs, outputs, axes, weights)
        args, inputs, outputs, axes = kv_step_export(kv, gpt.text_length)
        kv_step, kv_step_spilled = _export_graph(
            KvStep(gpt), args, os.path.join(work, "kv-step.onnx"), inputs, outputs, axes, weights)
        spilled = prefill_spilled or step_spilled or body_spilled or kv_step_spilled
        # Before fp16, whose Casts would stand between the weights and their Transposes.
        for part in (prefill, step, body, kv_step):
            weight_layout.store_as_consumed(part, work)
        if fp16:
            for part in (prefill, step, body, kv_step):
                weights_to_fp16(part, base_dir=work)
        loop = sample_loop.build_model(prefill, body, gpt.image_tokens, work)
        models = {GRAPH_FILES["prefill"]: prefill, GRAPH_FILES["step"]: step, GRAPH_FILES["sample_loop"]: loop,
                  GRAPH_FILES["kv_step"]: kv_step}
        if external is None:
            external = spilled or max(m.ByteSize() for m in models.values()) > PROTOBUF_LIMIT
        if spilled and not external:
            raise SystemExit("the generator's weights pass protobuf's 2 GB: they need external data")
        if external:
            save_sharing_weights(models, out_dir, base_dir=work)
        else:
            for name, model in models.items():
                onnx.save(model, os.path.join(out_dir, name))
    finally:
        shutil.rmtree(work)
    onnx.checker.check_model(os.path.join(out_dir, GRAPH_FILES["sample_loop"]))
    return list(models) + ([WEIGHTS_FILE] if external else [])


def export_decoder(vqgan, out_dir, fp16=False):
    path = os.path.join(out_dir, GRAPH_FILES["decoder"])
    _export(vqgan, (torch.zeros(2, vqgan.grid ** 2, dtype=torch.long),), path, ["image_tokens"], ["pixels"],
            {"image_tokens": {0: "B"}, "pixels": {0: "B"}})
    if fp16:
        model = onnx.load(path)
        weights_to_fp16(model)
        onnx.save(model, path)
    return [GRAPH_FILES["decoder"]]


def export_encoder(encoder, out_dir):
    """pixels uint8 [B, H, W, 3] -> image_tokens [B, N], float32 weights whatever --fp16 says."""
    size = encoder.resolution
    pixels = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    _export(encoder, (pixels,), os.path.join(out_dir, GRAPH_FILES["encoder"]), ["pixels"], ["image_tokens"],
            {"pixels": {0: "B"}, "image_tokens": {0: "B"}})
    return [GRAPH_FILES["encoder"]]


# --- The pack ---

def generation_sections(gpt, vqgan, pad_id):
    return {
        "geometry": {
            "text_length": gpt.text_length,
            "text_vocab_size": gpt.tok_emb_txt.num_embeddings,
            "image_grid": [vqgan.grid, vqgan.grid],
            "codebook_size": gpt.tok_emb_img.num_embeddings,
            "image_size": [vqgan.resolution, vqgan.resolution],
            "image_token_offset": gpt.tok_emb_txt.num_embeddings,
        },
        "generator": {
            "tokenizer": TOKENIZER_FILE,
            "text_pad_id": pad_id,
            "layers": gpt.layers,
            "heads": gpt.heads,
            "head_dim": gpt.head_dim,
            "graphs": {k: GRAPH_FILES[k] for k in ("prefill", "step", "sample_loop", "kv_step")},
            "sampling_defaults": {**SAMPLING_DEFAULTS,
                                  "top_k": min(SAMPLING_DEFAULTS["top_k"], gpt.tok_emb_img.num_embeddings)},
        },
        "decoder": {"graph": GRAPH_FILES["decoder"]},
        "encoder": {"graph": GRAPH_FILES["encoder"]},
    }


def export_pack(checkpoint, out, clip_checkpoint=None, clip_bpe=None, fp16=False, external=None, name=None,
                version=None):
    if os.path.exists(out):
        raise SystemExit(f"{out} exists; choose a new folder")
    if (clip_checkpoint is None) != (clip_bpe is None):
        raise SystemExit("--clip-checkpoint and --clip-bpe come together")
    config, stage1, stage2, vocab, merges = read_release(checkpoint)
    gpt, vqgan, encoder = build_models(config, stage1, stage2)
    del stage1, stage2  # the modules hold the tensors they use; the rest (stage 2's text head) goes
    _, pad_id = tok.special_ids(vocab)
    if pad_id >= gpt.tok_emb_txt.num_embeddings:
        raise SystemExit(f"[PAD] is id {pad_id}, outside stage 2's {gpt.tok_emb_txt.num_embeddings} text embeddings")
    os.makedirs(out)
    files = export_generator(gpt, out, fp16, external) + export_decoder(vqgan, out, fp16)
    files += export_encoder(encoder, out)
    with open(os.path.join(out, TOKENIZER_FILE), "w", encoding="utf-8") as f:
        json.dump(tok.tokenizer_json(vocab, merges), f, ensure_ascii=False)
    files.append(TOKENIZER_FILE)
    release = os.path.basename(os.path.normpath(checkpoint))
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": name or f"mindalle-{release.lower()}"[:64],
        "version": version or release[:64],
        "description": f"minDALL-E {release} (Kakao Brain): {gpt.layers} layers, width {gpt.heads * gpt.head_dim}, "
                       f"{gpt.text_length} text + {gpt.image_tokens} image tokens, VQGAN f16 decoder and encoder.",
        "license": LICENSE,
        **generation_sections(gpt, vqgan, pad_id),
    }
    if clip_checkpoint:
        manifest["clip"], clip_files = openai_clip_pack.write_clip(oc.load_model(clip_checkpoint),
                                                                   oc.read_merges(clip_bpe), out)
        files += clip_files
    manifest["files"] = {n: file_entry(os.path.join(out, n)) for n in sorted(files)}
    write_manifest(out, manifest)
    return manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="minDALL-E's release folder (config.yaml, "
                                                            "stage1_last.ckpt, stage2_last.ckpt, tokenizer/)")
    parser.add_argument("--out", required=True, help="the new pack's folder (must not exist)")
    parser.add_argument("--clip-checkpoint",
                        help="OpenAI CLIP checkpoint for reranking (as training.export.openai_clip_pack takes)")
    parser.add_argument("--clip-bpe", help="its merges file (bpe_simple_vocab_16e6.txt.gz or merges.txt)")
    parser.add_argument("--fp16", action="store_true", help="store weights as float16 (computed in float32)")
    parser.add_argument("--external-data", action="store_true", default=None,
                        help="one shared weights file for the generator's graphs even under 2 GB")
    parser.add_argument("--name", help="pack name (default mindalle-<folder>)")
    parser.add_argument("--version", help="pack version (default <folder>)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    manifest = export_pack(args.checkpoint, args.out, args.clip_checkpoint, args.clip_bpe, args.fp16,
                           args.external_data, args.name, args.version)
    print(json.dumps({"pack": args.out, "name": manifest["name"], "geometry": manifest["geometry"],
                      "clip": "clip" in manifest, "bytes": sum(f["bytes"] for f in manifest["files"].values())}))
    if "clip" not in manifest:
        print(f"{args.out} has no CLIP yet: add it with "
              f"python3 -m training.export.openai_clip_pack --base {args.out} ...")


if __name__ == "__main__":
    main()
