"""A small resumable training loop shared by the three models: AdamW, warmup + cosine,
JSON progress lines, and a checkpoint every few hundred steps so a killed run goes on."""
import json
import math
import os
import time

import torch


def lr_at(step, total, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class Log:
    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, "log.jsonl")

    def __call__(self, **fields):
        fields["time"] = time.strftime("%H:%M:%S")
        line = json.dumps(fields)
        print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def train(name, model, batches, steps, lr, run_dir, log, warmup=100, weight_decay=0.01, every=200, after_step=None):
    """Runs `steps` optimiser steps of loss = batches(step) -> (loss, metrics); after_step(step),
    if given, runs after each (a measurement along the way)."""
    done_path = os.path.join(run_dir, f"{name}.pt")
    # A run trained on a GPU may be finished on a CPU: load onto wherever the model is.
    device = next(model.parameters()).device
    if os.path.exists(done_path):
        model.load_state_dict(torch.load(done_path, map_location=device))
        log(stage=name, status="loaded")
        return model
    partial_path = os.path.join(run_dir, f"{name}.partial.pt")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    start = 0
    if os.path.exists(partial_path):
        state = torch.load(partial_path, map_location=device)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        start = state["step"]
    model.train()
    began = time.time()
    for step in range(start, steps):
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        loss, metrics = batches(step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if after_step:
            after_step(step)
        if step % 25 == 0 or step == steps - 1:
            rate = (step + 1 - start) / (time.time() - began)
            log(stage=name, step=step, loss=round(loss.item(), 4), steps_per_s=round(rate, 3),
                **{k: round(float(v), 4) for k, v in metrics.items()})
        if (step + 1) % every == 0 and step + 1 < steps:
            torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step + 1},
                       partial_path)
    model.eval()
    torch.save(model.state_dict(), done_path)
    if os.path.exists(partial_path):
        os.remove(partial_path)
    log(stage=name, status="done", minutes=round((time.time() - began) / 60, 2))
    return model
