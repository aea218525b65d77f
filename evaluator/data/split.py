"""The seeded meta-train / meta-val split of a training split (the test split is never used)."""

from __future__ import annotations

import torch

from auxnas.evaluator.data.base import Split


def meta_split(train: Split, meta_val_fraction: float, split_seed: int) -> tuple[Split, Split]:
    """(meta_train, meta_val): a seeded random partition; both parts keep at least one image."""
    n = len(train)
    if n < 2:
        raise ValueError(f"data: the training split has {n} image(s); a meta-train/meta-val split needs 2")
    n_val = min(n - 1, max(1, round(n * meta_val_fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    return train.subset(train_idx), train.subset(val_idx)
