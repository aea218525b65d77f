"""Tasks: output channels, training loss, metric accumulator and the score metric of each kind.

A task's *score metric* is in [0, 1], higher is better; the reward is the geometric mean of the
score metrics of all tasks (docs/design.md, "Scoring a candidate").
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

from auxnas.evaluator.data.base import TaskInfo
from auxnas.evaluator.metrics import ClassificationMetrics, DepthMetrics, NormalMetrics, SegmentationMetrics


class Task(ABC):
    kind: str
    score_metric: str
    dense: bool = True  # predicts a map at image resolution (else one vector per image)

    def __init__(self, info: TaskInfo) -> None:
        self.name = info.name
        self.info = info

    @property
    @abstractmethod
    def out_channels(self) -> int: ...

    @abstractmethod
    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss, averaged over valid pixels (0 when a batch has none, never NaN)."""

    @abstractmethod
    def metrics(self): ...

    def from_dense(self, pred: torch.Tensor) -> torch.Tensor:
        """Turn a dense (N, C, H, W) prediction (the auxiliary heads') into this task's format."""
        return pred


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return (values * valid).sum() / valid.sum().clamp_min(1)


class SegmentationTask(Task):
    kind = "segmentation"
    score_metric = "miou"

    @property
    def out_channels(self) -> int:
        return int(self.info.num_classes)

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.long()
        total = F.cross_entropy(pred.float(), target, ignore_index=-1, reduction="sum")
        return total / (target >= 0).sum().clamp_min(1)

    def metrics(self) -> SegmentationMetrics:
        return SegmentationMetrics(int(self.info.num_classes))


class DepthTask(Task):
    kind = "depth"
    score_metric = "delta1"

    @property
    def out_channels(self) -> int:
        return 1

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _masked_mean((pred.float() - target).abs(), target > 0)

    def metrics(self) -> DepthMetrics:
        return DepthMetrics()


class NormalTask(Task):
    kind = "normal"
    score_metric = "within_22.5"

    @property
    def out_channels(self) -> int:
        return 3

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target.abs().sum(dim=1) > 0
        cos = (F.normalize(pred.float(), dim=1) * target).sum(dim=1)
        return _masked_mean(1.0 - cos, valid)

    def metrics(self) -> NormalMetrics:
        return NormalMetrics()


class ClassificationTask(Task):
    kind = "classification"
    score_metric = "accuracy"
    dense = False

    @property
    def out_channels(self) -> int:
        return int(self.info.num_classes)

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(pred.float(), target.long())

    def metrics(self) -> ClassificationMetrics:
        return ClassificationMetrics()

    def from_dense(self, pred: torch.Tensor) -> torch.Tensor:
        return pred.mean(dim=(2, 3))


_KINDS: dict[str, type[Task]] = {
    cls.kind: cls for cls in (SegmentationTask, DepthTask, NormalTask, ClassificationTask)
}


def make_task(info: TaskInfo) -> Task:
    return _KINDS[info.kind](info)
