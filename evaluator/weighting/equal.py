from __future__ import annotations

from collections.abc import Mapping

import torch

from auxnas.evaluator.weighting.base import Weighting


class EqualWeighting(Weighting):
    """Sum of the task losses (the default)."""

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum(losses[t] for t in self.tasks)
