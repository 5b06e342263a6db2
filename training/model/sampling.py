"""The contract's sampling rule and a KV-cache sampling loop, in PyTorch."""
import torch


def sample_rule(logits, uniform, top_k, temperature=1.0, top_p=1.0):
    """logits [B, K], uniform [B] in [0, 1) -> codebook indices [B] (packs/CONTRACT.md)."""
    values, indices = (logits / temperature).topk(top_k, dim=-1)
    probs = values.softmax(-1)
    if top_p < 1:
        before = probs.cumsum(-1) - probs
        probs = torch.where(before < top_p, probs, torch.zeros_like(probs))
    cumulative = probs.cumsum(-1)
    threshold = uniform.unsqueeze(1) * cumulative[:, -1:]
    position = (cumulative <= threshold).sum(-1, keepdim=True).clamp(max=top_k - 1)
    return indices.gather(1, position).squeeze(1)


@torch.no_grad()
def sample_images(generator, text_tokens, uniforms, top_k, temperature=1.0, top_p=1.0, keep=None):
    """text_tokens [B, T], uniforms [B, N] -> image tokens [B, N]: one prefill, N-1 steps.

    keep [B, N] (optional; sample_loop's `keep`, packs/CONTRACT.md): a code >= 0 is the token at
    its position instead of the sampled one, and what the next step reads; its uniform goes unused,
    so the other positions draw with the uniforms they would have without it.
    """
    logits, kv = generator.prefill(text_tokens)
    tokens = []
    for k in range(uniforms.shape[1]):
        token = sample_rule(logits, uniforms[:, k], top_k, temperature, top_p)
        if keep is not None:
            token = torch.where(keep[:, k] >= 0, keep[:, k], token)
        tokens.append(token)
        if k + 1 < uniforms.shape[1]:
            logits, kv = generator.step(token.unsqueeze(1), kv)
    return torch.stack(tokens, 1)
