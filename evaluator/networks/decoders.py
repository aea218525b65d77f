"""The task decoder: the paper's two-layer task head followed by bilinear upsampling to the
image size (3x3 conv-BN-ReLU, 1x1 conv); classification tasks pool globally first. It is the only
one (configs that still name it `decoder: baseline` are accepted, see ModelConfig)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _hidden(in_channels: int) -> int:
    return max(32, min(256, in_channels))


class DenseHead(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        hidden = _hidden(in_channels)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        y = self.out(self.body(x))
        return F.interpolate(y, size=output_size, mode="bilinear", align_corners=False)


class ClassificationHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        hidden = _hidden(in_channels)
        self.body = nn.Sequential(
            nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        return self.body(x.mean(dim=(2, 3)))


def build_decoder(in_channels: int, task) -> nn.Module:
    if task.dense:
        return DenseHead(in_channels, task.out_channels)
    return ClassificationHead(in_channels, task.out_channels)
