"""Export a pack's models to the ONNX graphs of packs/CONTRACT.md (opset 17).

`python3 -m training.export.graphs packs/P...` exports a pack's generator graphs (prefill, step,
sample_loop, kv_step) again from the weights they hold, when the code that exports them changed; the
manifest's checksums and memory figures follow. An int8 pack is quantized again from its float
pack instead (training.quantize).
"""
import argparse
import json
import os
import tempfile

import torch
import torch.nn as nn

from training.export import sample_loop, weight_layout
from training.export.opset import OPSET, torchscript_exporter
from training.pack.manifest import GRAPH_FILES, SCHEMA_VERSION, file_entry, write_manifest
from training.pack.weights import load_pack


class Prefill(nn.Module):
    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, text_tokens):
        return self.generator.prefill(text_tokens)


class Step(nn.Module):
    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, image_token, past_kv):
        return self.generator.step(image_token, past_kv)


class LoopStep(nn.Module):
    """sample_loop's Loop body: the step with each layer's cache in two parts, the text's but
    its last position (the same for the whole image: read from outside the Loop, never copied)
    and the rest (carried from one iteration to the next and grown by the new position), so a
    step copies only the part it grows. The last text position starts the grown part, so that
    it is never empty. Inputs and outputs are named by sample_loop.loop_step_names."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, image_token, *caches):
        layers = len(caches) // 4
        text, past = caches[:2 * layers], caches[2 * layers:]
        parts = [[(text[2 * i], text[2 * i + 1]), (past[2 * i], past[2 * i + 1])] for i in range(layers)]
        logits, new = self.generator.step_layers(image_token, parts)
        present = []
        for i, (k, v) in enumerate(new):
            present += [torch.cat([past[2 * i], k], 2), torch.cat([past[2 * i + 1], v], 2)]
        return (logits, *present)


class KvStep(nn.Module):
    """kv_step: prefill and step in one graph over a cache the caller holds. The prompts'
    rows (text_tokens [P, T]) come out as prefill's (logits, present_kv [L, 2, P, H, T, D]); the
    image rows (image_token [B, 1]) read each layer's keys and values from buffers [B, H, S, D]
    of which the first `position` [1] positions are filled, and return the new position's
    (logits [B, K], new_kv [L, 2, B, H, 1, D]), which the caller writes into its buffers at
    `position`. Nothing is copied or grown: the buffers are read where they lie. A run feeds
    zero rows to the half it does not need. One graph, so each weight is one initializer read
    by both halves (onnxruntime prepacks it once; a second session would hold it again)."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, text_tokens, image_token, position, *caches):
        prompt_logits, prompt_kv = self.generator.prefill(text_tokens)
        layers = [[(caches[2 * i], caches[2 * i + 1], position)] for i in range(len(caches) // 2)]
        logits, new = self.generator.step_layers(image_token, layers)
        return prompt_logits, prompt_kv, logits, torch.stack([torch.stack(kv) for kv in new])


def kv_step_names(layers):
    """(input names, output names) of kv_step."""
    caches = [f"{kind}_{i}" for i in range(layers) for kind in ("k", "v")]
    return (["text_tokens", "image_token", "position", *caches],
            ["prompt_logits", "prompt_kv", "logits", "new_kv"])


def kv_step_export(present_kv, text_length):
    """(args, input names, output names, dynamic axes) to export KvStep, given a prefill's
    present_kv [L, 2, B, H, T, D]: buffers of T + 2 positions, T filled."""
    layers, _, batch, heads, _, head_dim = present_kv.shape
    inputs, outputs = kv_step_names(layers)
    text = torch.zeros(batch, text_length, dtype=torch.long)
    token = torch.zeros(batch, 1, dtype=torch.long)
    position = torch.tensor([text_length])
    unfilled = present_kv.new_zeros(batch, heads, 2, head_dim)
    caches = [torch.cat([present_kv[i // 2, i % 2], unfilled], 2) for i in range(2 * layers)]
    axes = {"text_tokens": {0: "P"}, "image_token": {0: "B"}, "prompt_logits": {0: "P"},
            "prompt_kv": {2: "P"}, "logits": {0: "B"}, "new_kv": {2: "B"}}
    for name in inputs[3:]:
        axes[name] = {0: "B", 2: "S"}
    return (text, token, position, *caches), inputs, outputs, axes


def loop_step_export(present_kv, text_length):
    """(args, input names, output names, dynamic axes) to export LoopStep, given a prefill's
    present_kv [L, 2, B, H, T, D]."""
    layers = present_kv.shape[0]
    inputs, outputs = sample_loop.loop_step_names(layers)
    text = [present_kv[i, j, :, :, :text_length - 1] for i in range(layers) for j in range(2)]
    past = [present_kv[i, j, :, :, text_length - 1:] for i in range(layers) for j in range(2)]
    token = torch.zeros(present_kv.shape[2], 1, dtype=torch.long)
    axes = {name: {0: "B"} for name in inputs + outputs}
    for name in inputs[1 + 2 * layers:]:
        axes[name][2] = "P"
    for name in outputs[1:]:
        axes[name][2] = "P_next"
    return (token, *text, *past), inputs, outputs, axes


class PixelDecoder(nn.Module):
    """Codebook indices -> uint8 NHWC, rounded and clamped inside the graph."""

    def __init__(self, vqvae):
        super().__init__()
        self.vqvae = vqvae

    def forward(self, image_tokens):
        x = self.vqvae.decode(image_tokens)
        x = (x * 255.0).round().clamp(0.0, 255.0).to(torch.uint8)
        return x.permute(0, 2, 3, 1)


class PixelEncoder(nn.Module):
    """uint8 NHWC pixels at the decoder's size -> codebook indices [B, N] (packs/CONTRACT.md)."""

    def __init__(self, vqvae):
        super().__init__()
        self.vqvae = vqvae

    def forward(self, pixels):
        return self.vqvae.encode(pixels.permute(0, 3, 1, 2).float() / 255.0)


def _export(module, args, path, inputs, outputs, dynamic_axes):
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, **torchscript_exporter(),
                          # Unfolded, the initializers keep their parameter names, so the
                          # weights can be read back from a pack (training/pack/weights.py).
                          do_constant_folding=False)


def export_generator(generator, out_dir, with_loop=True):
    c = generator.config
    text = torch.zeros(2, c.text_length, dtype=torch.long)
    prefill_path = os.path.join(out_dir, GRAPH_FILES["prefill"])
    step_path = os.path.join(out_dir, GRAPH_FILES["step"])
    _export(Prefill(generator), (text,), prefill_path, ["text_tokens"], ["logits", "present_kv"],
            {"text_tokens": {0: "B"}, "logits": {0: "B"}, "present_kv": {2: "B"}})
    with torch.no_grad():
        _, kv = generator.prefill(text)
    token = torch.zeros(2, 1, dtype=torch.long)
    _export(Step(generator), (token, kv), step_path, ["image_token", "past_kv"], ["logits", "present_kv"],
            {"image_token": {0: "B"}, "past_kv": {2: "B", 4: "P"},
             "logits": {0: "B"}, "present_kv": {2: "B", 4: "P_next"}})
    kv_step_path = os.path.join(out_dir, GRAPH_FILES["kv_step"])
    args, inputs, outputs, axes = kv_step_export(kv, c.text_length)
    _export(KvStep(generator), args, kv_step_path, inputs, outputs, axes)
    # The files too, not only sample_loop's copy of them: every graph reads its matrices as stored.
    weight_layout.rewrite_files([prefill_path, step_path, kv_step_path])
    if with_loop:
        args, inputs, outputs, axes = loop_step_export(kv, c.text_length)
        with tempfile.TemporaryDirectory() as work:  # the body lives inside sample_loop only
            body_path = os.path.join(work, "loop-step.onnx")
            _export(LoopStep(generator), args, body_path, inputs, outputs, axes)
            loop_path = os.path.join(out_dir, GRAPH_FILES["sample_loop"])
            sample_loop.build(prefill_path, body_path, c.image_tokens, loop_path)


def export_decoder(vqvae, out_dir):
    n = vqvae.config.grid ** 2
    tokens = torch.zeros(2, n, dtype=torch.long)
    _export(PixelDecoder(vqvae), (tokens,), os.path.join(out_dir, GRAPH_FILES["decoder"]),
            ["image_tokens"], ["pixels"], {"image_tokens": {0: "B"}, "pixels": {0: "B"}})


def export_encoder(vqvae, out_dir):
    size = vqvae.config.image_size
    pixels = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    _export(PixelEncoder(vqvae), (pixels,), os.path.join(out_dir, GRAPH_FILES["encoder"]),
            ["pixels"], ["image_tokens"], {"pixels": {0: "B"}, "image_tokens": {0: "B"}})


def export_clip(clip, out_dir):
    c = clip.config
    pixels = torch.zeros(2, 3, c.image_size, c.image_size)
    _export(clip.visual, (pixels,), os.path.join(out_dir, GRAPH_FILES["clip_image"]),
            ["pixel_values"], ["image_embeds"], {"pixel_values": {0: "B"}, "image_embeds": {0: "B"}})
    ids = torch.zeros(2, c.context_length, dtype=torch.long)
    ids[:, 1] = c.eos_id
    _export(clip.text, (ids,), os.path.join(out_dir, GRAPH_FILES["clip_text"]),
            ["input_ids"], ["text_embeds"], {"input_ids": {0: "B"}, "text_embeds": {0: "B"}})


def export_all(generator, vqvae, clip, out_dir, with_loop=True, with_encoder=True):
    os.makedirs(out_dir, exist_ok=True)
    export_generator(generator, out_dir, with_loop)
    export_decoder(vqvae, out_dir)
    if with_encoder:
        export_encoder(vqvae, out_dir)
    export_clip(clip, out_dir)


def reexport_generator(pack_dir):
    """Export the pack's generator graphs again from their own weights; the rest as it was."""
    doc, generator, _, _, _ = load_pack(pack_dir)
    if doc.get("weights", {}).get("format", "float32") != "float32":
        raise SystemExit(f"{pack_dir}: {doc['weights']['format']} weights; quantize its float pack again instead")
    graph_names = doc["generator"]["graphs"]
    if any(graph_names[g] != GRAPH_FILES[g] for g in graph_names):
        raise SystemExit(f"{pack_dir}: its generator graphs are not named as this exporter names them")
    export_generator(generator, pack_dir, with_loop="sample_loop" in graph_names)
    # The graphs are this exporter's now, kv_step among them: the pack is of its schema.
    graph_names["kv_step"] = GRAPH_FILES["kv_step"]
    doc["schema_version"] = SCHEMA_VERSION
    for graph in graph_names.values():
        doc["files"][graph] = file_entry(os.path.join(pack_dir, graph))
    write_manifest(pack_dir, doc)


def main():
    parser = argparse.ArgumentParser(description="Export packs' generator graphs again from their own weights.")
    parser.add_argument("packs", nargs="+")
    torch.set_num_threads(2)
    for pack in parser.parse_args().packs:
        reexport_generator(pack)
        with open(os.path.join(pack, "manifest.json")) as f:
            print(f"{pack}: generator graphs exported again; memory {json.load(f).get('memory')}")


if __name__ == "__main__":
    main()
