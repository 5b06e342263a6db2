"""Upstream models rebuilt under their own parameter names, their tokenizers, and a pickle reader that
runs none of their code: what the exporters load public checkpoints with."""
