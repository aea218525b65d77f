"""Build the auxiliary modules of a genotype as one torch module (training only).

    aux = AuxiliaryModules(genotype, feature_channels=[24, 32, 96], task_channels={"segmentation": 13, ...})
    preds = aux(features, output_size=(H, W))     # {task: (N, C_t, H, W)}

`features` are the encoder's `P` feature maps, shallow to deep (any resolutions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from auxnas.search_space.genotype import Cell, Genotype
from auxnas.search_space.ops import conv_bn_relu, make_adaptor, make_aggregator
from auxnas.search_space.space import FEATURE_PREFIX


class AuxCell(nn.Module):
    def __init__(self, cell: Cell, c: int) -> None:
        super().__init__()
        self.inputs = cell.inputs
        self.adaptor_1 = make_adaptor(cell.adaptors[0], c)
        self.adaptor_2 = make_adaptor(cell.adaptors[1], c)
        self.aggregate = make_aggregator(cell.aggregator, c)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.aggregate(self.adaptor_1(x1), self.adaptor_2(x2))


class AuxHead(nn.Module):
    """3x3 conv-BN-ReLU -> 1x1 conv to the task's channels -> bilinear upsampling."""

    def __init__(self, c: int, out_channels: int) -> None:
        super().__init__()
        self.body = conv_bn_relu(c, c, 3)
        self.out = nn.Conv2d(c, out_channels, 1)

    def forward(self, x: torch.Tensor, output_size: Sequence[int]) -> torch.Tensor:
        y = self.out(self.body(x))
        return F.interpolate(y, size=tuple(output_size), mode="bilinear", align_corners=False)


class AuxiliaryModules(nn.Module):
    def __init__(
        self,
        genotype: Genotype,
        feature_channels: Sequence[int],
        task_channels: Mapping[str, int],
        aux_channels: int = 64,
    ) -> None:
        super().__init__()
        space = genotype.space
        if len(feature_channels) != space.num_inputs:
            raise ValueError(
                f"feature_channels: genotype reads {space.num_inputs} feature maps, got {len(feature_channels)}"
            )
        missing = [t for t in space.tasks if t not in task_channels]
        if missing:
            raise ValueError(f"task_channels: no output channels for task {missing[0]!r}")
        self.genotype = genotype
        c = aux_channels
        self.stems = nn.ModuleDict(
            {t: nn.ModuleList(conv_bn_relu(ch, c, 1) for ch in feature_channels) for t in space.tasks}
        )
        self.cells = nn.ModuleDict({t: nn.ModuleList() for t in space.tasks})
        for cell in genotype.cells:  # generation order, so cells[t][p] is cell p of task t
            self.cells[cell.task].append(AuxCell(cell, c))
        self.heads = nn.ModuleDict({t: AuxHead(c, task_channels[t]) for t in space.tasks})

    def forward(
        self, features: Sequence[torch.Tensor], output_size: Sequence[int]
    ) -> dict[str, torch.Tensor]:
        space = self.genotype.space
        if len(features) != space.num_inputs:
            raise ValueError(f"features: expected {space.num_inputs} feature maps, got {len(features)}")
        stemmed = {t: [stem(f) for stem, f in zip(self.stems[t], features, strict=True)] for t in space.tasks}
        outputs: dict[str, torch.Tensor] = {}  # "task:p" -> cell output
        for cell in self.genotype.cells:

            def pick(ref: str, task: str = cell.task) -> torch.Tensor:
                name, idx = ref.split(":")
                return stemmed[task][int(idx)] if name == FEATURE_PREFIX else outputs[ref]

            module = self.cells[cell.task][cell.index]
            outputs[f"{cell.task}:{cell.index}"] = module(pick(cell.inputs[0]), pick(cell.inputs[1]))
        last = space.num_inputs - 1
        return {t: self.heads[t](outputs[f"{t}:{last}"], output_size) for t in space.tasks}

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per task module (stems, cells and head) and in total."""
        counts = {
            t: count_parameters(self.stems[t])
            + count_parameters(self.cells[t])
            + count_parameters(self.heads[t])
            for t in self.genotype.space.tasks
        }
        counts["total"] = sum(counts.values())
        return counts


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
