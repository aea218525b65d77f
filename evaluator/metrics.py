"""Metric accumulators: sums over every valid pixel (or image) of a split, then one `compute()`.

Accumulating sums rather than averaging per-batch values keeps the figures exact for any batch
size and any number of ignored / invalid pixels (the field's common pitfall).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_ANGLE_BINS_PER_DEGREE = 100  # median angle from a 0.01-degree histogram: within 0.005 deg


class SegmentationMetrics:
    """Confusion matrix over all labelled pixels (-1 = ignored): mIoU and pixel accuracy.

    mIoU averages the IoU of classes present in the labels or the predictions of the split."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        pred = logits.argmax(dim=1)
        valid = target >= 0
        idx = target[valid].long() * self.num_classes + pred[valid]
        counts = torch.bincount(idx, minlength=self.num_classes**2)
        self.confusion += counts.view(self.num_classes, self.num_classes).cpu()

    def compute(self) -> dict[str, float]:
        cm = self.confusion.double()
        tp = cm.diag()
        union = cm.sum(0) + cm.sum(1) - tp
        present = union > 0
        total = cm.sum()
        return {
            "miou": float((tp[present] / union[present]).mean()) if present.any() else 0.0,
            "pixel_acc": float(tp.sum() / total) if total > 0 else 0.0,
        }


class DepthMetrics:
    """Over valid pixels (target > 0): abs and relative error, RMSE, delta < 1.25^k."""

    def __init__(self) -> None:
        self.sums = torch.zeros(7, dtype=torch.float64)  # abs, rel, sq, d1, d2, d3, count

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        valid = target > 0
        p = pred.float()[valid].clamp_min(1e-3)  # ratios of non-positive predictions are undefined
        t = target.float()[valid]
        err = (p - t).abs()
        ratio = torch.maximum(p / t, t / p)
        stats = torch.stack(
            [
                err.sum(),
                (err / t).sum(),
                (err * err).sum(),
                (ratio < 1.25).sum(),
                (ratio < 1.25**2).sum(),
                (ratio < 1.25**3).sum(),
                torch.tensor(float(t.numel()), device=t.device),
            ]
        )
        self.sums += stats.double().cpu()

    def compute(self) -> dict[str, float]:
        abs_sum, rel_sum, sq_sum, d1, d2, d3, n = self.sums.tolist()
        if n == 0:
            return {"delta1": 0.0, "delta2": 0.0, "delta3": 0.0}
        return {
            "abs_err": abs_sum / n,
            "rel_err": rel_sum / n,
            "rmse": math.sqrt(sq_sum / n),
            "delta1": d1 / n,
            "delta2": d2 / n,
            "delta3": d3 / n,
        }


class NormalMetrics:
    """Angle in degrees between the L2-normalised prediction and the truth on valid pixels
    (non-zero truth): mean, median and the fractions within 11.25, 22.5 and 30 degrees."""

    THRESHOLDS = (11.25, 22.5, 30.0)

    def __init__(self) -> None:
        self.sum = 0.0
        self.within = [0, 0, 0]
        self.hist = torch.zeros(180 * _ANGLE_BINS_PER_DEGREE + 1, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        valid = target.abs().sum(dim=1) > 0
        p = F.normalize(pred.float(), dim=1).permute(0, 2, 3, 1)[valid]
        t = F.normalize(target.float(), dim=1).permute(0, 2, 3, 1)[valid]
        angle = torch.rad2deg(torch.acos((p * t).sum(dim=1).clamp(-1.0, 1.0)))
        self.sum += float(angle.double().sum())
        for i, deg in enumerate(self.THRESHOLDS):
            self.within[i] += int((angle < deg).sum())
        bins = (angle * _ANGLE_BINS_PER_DEGREE).round().long().clamp(0, self.hist.numel() - 1)
        self.hist += torch.bincount(bins, minlength=self.hist.numel()).cpu()

    def compute(self) -> dict[str, float]:
        n = int(self.hist.sum())
        if n == 0:
            return {"within_11.25": 0.0, "within_22.5": 0.0, "within_30": 0.0}
        cum = self.hist.cumsum(0)
        median_bin = int(torch.searchsorted(cum, torch.tensor((n + 1) // 2)))
        return {
            "mean_angle": self.sum / n,
            "median_angle": median_bin / _ANGLE_BINS_PER_DEGREE,
            "within_11.25": self.within[0] / n,
            "within_22.5": self.within[1] / n,
            "within_30": self.within[2] / n,
        }


class ClassificationMetrics:
    def __init__(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self.correct += int((logits.argmax(dim=1) == target).sum())
        self.total += int(target.numel())

    def compute(self) -> dict[str, float]:
        return {"accuracy": self.correct / self.total if self.total else 0.0}
