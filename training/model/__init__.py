"""The demo pack's three models (VQ-VAE, generator, CLIP), their sizes, and the recipe that trains them on
the shapes world. PyTorch only: a GPU machine without onnx trains with this and world/."""
