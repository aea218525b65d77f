from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from auxnas.evaluator.weighting.base import Weighting


class UncertaintyWeighting(Weighting):
    """Kendall, Gal and Cipolla (2018): `sum_t L_t / (2 sigma_t^2) + log sigma_t`.

    Learns `s_t = log sigma_t^2` (initialised to 0, i.e. weight 1/2) with the network."""

    def __init__(self, tasks: list[str]) -> None:
        super().__init__(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)))

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack([losses[t] for t in self.tasks])
        return (0.5 * torch.exp(-self.log_vars) * stacked + 0.5 * self.log_vars).sum()
