"""Measurements and checks of packs: quality on the shapes world, CLIP's caption mix, PyTorch's speed
for the benchmarks, and PyTorch's reference outputs for the parity tests."""
