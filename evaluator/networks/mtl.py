"""The hard-parameter-sharing multi-task network: one shared encoder, one decoder per task.

The main network's forward returns the task predictions AND the encoder's feature maps, so the
auxiliary modules (`search_space.builder.AuxiliaryModules`, training only) can read the last
`num_aux_inputs` of them; dropping the modules leaves exactly this network for inference.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from auxnas.evaluator.networks.decoders import build_decoder
from auxnas.evaluator.networks.encoders import Encoder, build_encoder


class MTLNetwork(nn.Module):
    def __init__(self, encoder: Encoder, decoders: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoders = nn.ModuleDict(dict(decoders))

    @property
    def feature_channels(self) -> list[int]:
        return list(self.encoder.feature_channels)

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        features = self.encoder(x)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        return {t: dec(features[-1], size) for t, dec in self.decoders.items()}, features


def build_network(model_cfg, tasks: Mapping, in_channels: int) -> MTLNetwork:
    """`tasks`: name -> `evaluator.tasks.Task`, in the config's order."""
    encoder = build_encoder(model_cfg, in_channels)
    n_stages = len(encoder.feature_channels)
    if model_cfg.num_aux_inputs > n_stages:
        raise ValueError(
            f"model.num_aux_inputs: {model_cfg.num_aux_inputs} is more than the {n_stages} feature maps "
            f"of encoder {model_cfg.encoder!r}"
        )
    deepest = encoder.feature_channels[-1]
    decoders = {name: build_decoder(deepest, task) for name, task in tasks.items()}
    return MTLNetwork(encoder, decoders)
