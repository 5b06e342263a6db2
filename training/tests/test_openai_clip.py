"""The OpenAI CLIP exporter's model is OpenAI's ViT CLIP: names, shapes, parameter count, and
the same weights read from Hugging Face's layout."""
import gzip
import json
import os
import pickle
import tempfile
import unittest

import torch

from training.eval.openai_clip_reference import reference_encode
from training.upstream import openai_clip as oc

VIT_B_32 = dict(embed_dim=512, resolution=224, vision_layers=12, vision_width=768, patch=32,
                context=77, vocab=49408, text_width=512, text_heads=8, text_layers=12)
# Names as they stand in OpenAI's checkpoints (clip/model.py), outside the repeated blocks.
TOP_LEVEL = {
    "logit_scale", "positional_embedding", "text_projection", "token_embedding.weight", "ln_final.weight",
    "ln_final.bias", "visual.class_embedding", "visual.positional_embedding", "visual.proj",
    "visual.conv1.weight", "visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight", "visual.ln_post.bias",
}
BLOCK = {"attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias", "ln_1.weight",
         "ln_1.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_2.weight",
         "ln_2.bias"}


class OpenAIClipModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.state = oc.OpenAIClip(**VIT_B_32).checkpoint_state()

    def test_vit_b_32_has_the_published_parameter_count(self):
        self.assertEqual(sum(t.numel() for t in self.state.values()), 151_277_313)

    def test_parameter_names_are_the_checkpoint_names(self):
        blocks = {f"visual.transformer.resblocks.{i}.{n}" for i in range(12) for n in BLOCK}
        blocks |= {f"transformer.resblocks.{i}.{n}" for i in range(12) for n in BLOCK}
        self.assertEqual(set(self.state), TOP_LEVEL | blocks)

    def test_the_architecture_is_read_back_from_the_shapes(self):
        self.assertEqual(oc.geometry_of(self.state), VIT_B_32)

    def test_the_extra_entries_of_a_torchscript_archive_are_dropped_on_load(self):
        model = oc.OpenAIClip(**VIT_B_32)
        extras = {"input_resolution": torch.tensor(224), "context_length": torch.tensor(77),
                  "vocab_size": torch.tensor(49408)}
        model.load_checkpoint({**{k: v.half() for k, v in self.state.items()}, **extras})
        self.assertEqual(model.visual.proj.dtype, torch.float32)

    def test_a_resnet_checkpoint_is_refused_by_name(self):
        with self.assertRaisesRegex(SystemExit, "ResNet"):
            oc.geometry_of({"visual.layer1.0.conv1.weight": torch.zeros(1)})


SMALL = dict(embed_dim=32, resolution=64, vision_layers=2, vision_width=64, patch=16,
             context=77, vocab=600, text_width=64, text_heads=1, text_layers=2)


def hugging_face_layout(state, vision_layers, text_layers):
    """A checkpoint as transformers' CLIPModel names it (openai/clip-vit-* on the Hub)."""
    hf = {
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
        "vision_model.embeddings.position_ids": torch.arange(state["visual.positional_embedding"].shape[0])[None],
        "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": state["visual.ln_post.bias"],
        "visual_projection.weight": state["visual.proj"].t().contiguous(),
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "text_model.final_layer_norm.weight": state["ln_final.weight"],
        "text_model.final_layer_norm.bias": state["ln_final.bias"],
        "text_projection.weight": state["text_projection"].t().contiguous(),
        "logit_scale": state["logit_scale"],
    }
    for tower, prefix, layers in (("vision_model", "visual.", vision_layers), ("text_model", "", text_layers)):
        for i in range(layers):
            src, dst = f"{prefix}transformer.resblocks.{i}.", f"{tower}.encoder.layers.{i}."
            for kind in ("weight", "bias"):
                for name, part in zip(("q_proj", "k_proj", "v_proj"), state[f"{src}attn.in_proj_{kind}"].chunk(3)):
                    hf[f"{dst}self_attn.{name}.{kind}"] = part.contiguous()
                hf[f"{dst}self_attn.out_proj.{kind}"] = state[f"{src}attn.out_proj.{kind}"]
                hf[f"{dst}layer_norm1.{kind}"] = state[f"{src}ln_1.{kind}"]
                hf[f"{dst}layer_norm2.{kind}"] = state[f"{src}ln_2.{kind}"]
                hf[f"{dst}mlp.fc1.{kind}"] = state[f"{src}mlp.c_fc.{kind}"]
                hf[f"{dst}mlp.fc2.{kind}"] = state[f"{src}mlp.c_proj.{kind}"]
    return hf


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, tensor in tensors.items():
        blob = tensor.contiguous().numpy().tobytes()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[tensor.dtype]
        header[name] = {"dtype": dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    encoded = json.dumps({"__metadata__": {"format": "pt"}, **header}).encode()
    with open(path, "wb") as f:
        f.write(len(encoded).to_bytes(8, "little") + encoded + b"".join(blobs))


class HuggingFaceLayoutTest(unittest.TestCase):
    def test_pytorch_model_bin_and_safetensors_read_back_as_the_openai_weights(self):
        torch.manual_seed(3)
        state = {k: torch.randn_like(v) for k, v in oc.OpenAIClip(**SMALL).checkpoint_state().items()}
        hf = hugging_face_layout(state, SMALL["vision_layers"], SMALL["text_layers"])
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(hf, os.path.join(tmp, "pytorch_model.bin"))
            write_safetensors(os.path.join(tmp, "model.safetensors"), hf)
            for file in ("pytorch_model.bin", "model.safetensors"):
                read = oc.read_checkpoint(os.path.join(tmp, file))
                self.assertEqual(set(read), set(state), file)
                for name, tensor in state.items():
                    self.assertTrue(torch.equal(read[name], tensor), f"{file}: {name}")
                oc.OpenAIClip(**oc.geometry_of(read)).load_checkpoint(read)


class RunsCode:
    """Unpickling this would call a function: a checkpoint must never get that far."""

    def __reduce__(self):
        return (os.getpid, ())


class UntrustedCheckpointTest(unittest.TestCase):
    def test_a_pickle_that_would_run_code_is_refused(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "pytorch_model.bin")
            torch.save({"logit_scale": torch.tensor(4.6), "payload": RunsCode()}, path)
            with self.assertRaises(pickle.UnpicklingError):
                oc.read_checkpoint(path)


class OpenAIVocabularyTest(unittest.TestCase):
    def test_a_full_merges_file_gives_49408_ids_with_the_specials_last(self):
        merges = [(f"a{i}", f"b{i}") for i in range(oc.MAX_MERGES)]
        vocab = oc.vocabulary(merges)
        self.assertEqual(len(vocab), 49408)
        self.assertEqual((vocab[oc.BOS], vocab[oc.EOS]), (49406, 49407))
        self.assertEqual(vocab["!"], 0)
        self.assertEqual(vocab["!</w>"], 256)

    def test_merges_read_alike_from_openais_gzip_and_hugging_faces_merges_txt(self):
        text = "#version: 0.2\nl o\nlo w</w>\ne r</w>\n"
        with tempfile.TemporaryDirectory() as tmp:
            with gzip.open(os.path.join(tmp, "bpe.txt.gz"), "wt", encoding="utf-8") as f:
                f.write(text)
            with open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as f:
                f.write(text)
            expected = [("l", "o"), ("lo", "w</w>"), ("e", "r</w>")]
            self.assertEqual(oc.read_merges(os.path.join(tmp, "bpe.txt.gz")), expected)
            self.assertEqual(oc.read_merges(os.path.join(tmp, "merges.txt")), expected)

    def test_the_reference_encoder_merges_by_rank_within_words(self):
        merges = [("l", "o"), ("lo", "w</w>"), ("e", "r</w>")]
        vocab = oc.vocabulary(merges)
        self.assertEqual(reference_encode("LOW  lower", merges),
                         [vocab["low</w>"], vocab["lo"], vocab["w"], vocab["er</w>"]])


if __name__ == "__main__":
    unittest.main()
