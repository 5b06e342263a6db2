"""How every graph here is exported: ONNX opset 17, by PyTorch's TorchScript-based exporter.

Apart from graphs.py, which needs the onnx package for the sample_loop graph, so that the
exporters that need only PyTorch (OpenAI CLIP's, the dVAE decoder's) run without it.
"""
import inspect

import torch

OPSET = 17


def torchscript_exporter():
    """torch.onnx.export's arguments for the TorchScript-based exporter these graphs are made
    with: newer PyTorch (2.9 and later) defaults to the dynamo exporter, which needs onnxscript."""
    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
