"""The synthetic shapes world: scenes, their captions and claims, the oracle that reads them back, and
the BPE tokenizer trained on them. numpy and PIL only: nothing of training below it."""
