"""The OpenAI CLIP exporter's model is OpenAI's ViT CLIP: names, shapes, parameter count."""
import unittest

import torch

from training import openai_clip as oc

VIT_B_32 = dict(embed_dim=512, resolution=224, vision_layers=12, vision_width=768, patch=32,
                context=77, vocab=49408, text_width=512, text_heads=8, text_layers=12)
# Names as they stand in OpenAI's checkpoints (clip/model.py), outside the repeated blocks.
TOP_LEVEL = {
    "logit_scale", "positional_embedding", "text_projection", "token_embedding.weight", "ln_final.weight",
    "ln_final.bias", "visual.class_embedding", "visual.positional_embedding", "visual.proj",
    "visual.conv1.weight", "visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight", "visual.ln_post.bias",
}
BLOCK = {"attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias", "ln_1.weight",
         "ln_1.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_2.weight", "ln_2.bias"}


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
        extras = {"input_resolution": torch.tensor(224), "context_length": torch.tensor(77), "vocab_size": torch.tensor(49408)}
        model.load_checkpoint({**{k: v.half() for k, v in self.state.items()}, **extras})
        self.assertEqual(model.visual.proj.dtype, torch.float32)

    def test_a_resnet_checkpoint_is_refused_by_name(self):
        with self.assertRaisesRegex(SystemExit, "ResNet"):
            oc.geometry_of({"visual.layer1.0.conv1.weight": torch.zeros(1)})


class OpenAIVocabularyTest(unittest.TestCase):
    def test_a_full_merges_file_gives_49408_ids_with_the_specials_last(self):
        merges = [(f"a{i}", f"b{i}") for i in range(oc.MAX_MERGES)]
        vocab = oc.vocabulary(merges)
        self.assertEqual(len(vocab), 49408)
        self.assertEqual((vocab[oc.BOS], vocab[oc.EOS]), (49406, 49407))
        self.assertEqual(vocab["!"], 0)
        self.assertEqual(vocab["!</w>"], 256)

    def test_the_reference_encoder_merges_by_rank_within_words(self):
        merges = [("l", "o"), ("lo", "w</w>"), ("e", "r</w>")]
        vocab = oc.vocabulary(merges)
        self.assertEqual(oc.reference_encode("LOW  lower", merges), [vocab["low</w>"], vocab["lo"], vocab["w"], vocab["er</w>"]])


if __name__ == "__main__":
    unittest.main()
