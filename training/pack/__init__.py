"""The pack format as the exporters here write it (manifest, file names and checksums), and the PyTorch
models read back from a pack."""
