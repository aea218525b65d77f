"""Main-loss weighting: how the per-task losses of the MAIN network become one loss.

The auxiliary losses are not weighted here; the objective is (paper eq. 3)
`weighting.combine(main_losses) + aux_weight * sum(aux_losses)`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class Weighting(nn.Module):
    """A module so that learnable weights (uncertainty) join the optimiser and the device."""

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def end_step(self, losses: Mapping[str, torch.Tensor]) -> None:
        """Called after every optimiser step with the detached unweighted losses."""
