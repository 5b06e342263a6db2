"""minDALL-E's full-size sample_loop for the GPU machine, whose Python has PyTorch but no `onnx`
and which takes 64 MiB a call: its 5 GB of weights cannot travel, and the pack cannot be
exported there. So the graph travels without them, with where each tensor lies in its
external-data file, and the file is written there from the same seeded random release.

    layout  PACK OUT        (here: onnx) OUT gets the pack's sample_loop graph, manifest.json
                            and weights-layout.json: [parameter, offset, length] per tensor
                            (`P.T` for a matrix stored transposed)
    weights OUT RELEASE     (there: PyTorch only) writes OUT/generator.weights from RELEASE's
                            stage2_last.ckpt (make_upstream_checkpoints --size full) and says
                            whether it is byte-identical to the pack exported here

A PyTorch that draws other random numbers for the same seed gives other weights of the same
shapes and scales: the sampler's speed and memory are the same, the images not.
"""
import hashlib
import json
import os
import shutil
import sys

GRAPH, LAYOUT, WEIGHTS = "generator-sample-loop.onnx", "weights-layout.json", "generator.weights"
# sample_loop's initializers are named after the graph that first used them: w/prefill/generator.<parameter>.
PREFIXES = ("w/prefill/generator.", "w/step/generator.")


def write_layout(pack, out):
    import onnx
    from training.export.sample_loop import external_ref

    model = onnx.load(os.path.join(pack, GRAPH), load_external_data=False)
    layout = {}
    for init in model.graph.initializer:
        ref = external_ref(init)
        if ref is None:
            continue
        if init.data_type != onnx.TensorProto.FLOAT or ref[0] != WEIGHTS:
            raise SystemExit(f"{init.name}: only a float32 pack's {WEIGHTS} is laid out here")
        parameter = next(init.name[len(p):] for p in PREFIXES if init.name.startswith(p))
        layout[ref[1]] = [parameter, ref[1], ref[2]]
    os.makedirs(out, exist_ok=True)
    shutil.copy(os.path.join(pack, GRAPH), out)
    shutil.copy(os.path.join(pack, "manifest.json"), out)
    with open(os.path.join(out, LAYOUT), "w") as f:
        json.dump(sorted(layout.values(), key=lambda entry: entry[1]), f)


def write_weights(out, release):
    import torch

    with open(os.path.join(out, LAYOUT)) as f:
        layout = json.load(f)
    # Tensors only, written by make_upstream_checkpoints: torch.load reads it as it is.
    state = torch.load(os.path.join(release, "stage2_last.ckpt"), map_location="cpu")["state_dict"]
    digest = hashlib.sha256()
    with open(os.path.join(out, WEIGHTS), "wb") as data:
        for parameter, offset, length in layout:
            gap = b"\0" * (offset - data.tell())  # the exporter's 4 KiB alignment
            # `P.T`: parameter P stored transposed, as its MatMul reads it (training/export/weight_layout.py).
            tensor = state.pop(parameter[:-2]).t() if parameter.endswith(".T") else state.pop(parameter)
            raw = tensor.float().contiguous().numpy().tobytes()
            if len(raw) != length:
                raise SystemExit(f"{parameter}: {len(raw)} bytes in the release, {length} in the layout")
            for chunk in (gap, raw):
                data.write(chunk)
                digest.update(chunk)
    with open(os.path.join(out, "manifest.json")) as f:
        expected = json.load(f)["files"][WEIGHTS]["sha256"]
    same = digest.hexdigest() == expected
    print(json.dumps({"weights": os.path.join(out, WEIGHTS), "bytes": os.path.getsize(os.path.join(out, WEIGHTS)),
                      "identical_to_the_exported_pack": same}))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("layout", "weights"):
        raise SystemExit(__doc__)
    (write_layout if sys.argv[1] == "layout" else write_weights)(sys.argv[2], sys.argv[3])
