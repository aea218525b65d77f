from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from auxnas.evaluator.weighting.base import Weighting


class DWAWeighting(Weighting):
    """Dynamic Weight Average (Liu, Johns and Davison 2019).

    `lambda_k = K exp(w_k / T) / sum_i exp(w_i / T)` with `w_k = L_k(e-1) / L_k(e-2)`, the ratio of
    the task's epoch-mean unweighted losses over the two previous epochs; weights are 1 for the
    first two epochs; T = 2. An "epoch" is `steps_per_epoch` optimiser steps.
    """

    def __init__(self, tasks: list[str], steps_per_epoch: int, temperature: float = 2.0) -> None:
        super().__init__(tasks)
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.temperature = temperature
        self.history: list[list[float]] = []  # epoch-mean losses per finished epoch
        self._sums: torch.Tensor | None = None  # kept on the device: no sync until an epoch ends
        self._count = 0
        self.weights = [1.0] * len(tasks)

    def combine(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum(w * losses[t] for w, t in zip(self.weights, self.tasks, strict=True))

    def end_step(self, losses: Mapping[str, torch.Tensor]) -> None:
        values = torch.stack([losses[t].detach().float() for t in self.tasks])
        self._sums = values if self._sums is None else self._sums + values
        self._count += 1
        if self._count < self.steps_per_epoch:
            return
        self.history.append((self._sums / self._count).tolist())
        self._sums, self._count = None, 0
        if len(self.history) >= 2:
            prev, before = self.history[-1], self.history[-2]
            ratios = [p / b if b > 0 else 1.0 for p, b in zip(prev, before, strict=True)]
            exps = [math.exp(r / self.temperature) for r in ratios]
            k = len(self.tasks)
            self.weights = [k * e / sum(exps) for e in exps]
