"""Writers of packs: the demo models' ONNX graphs, the sample_loop graph, random packs, and packs from
upstream checkpoints (minDALL-E, OpenAI's dVAE decoder, OpenAI CLIP)."""
