"""The controller policy: an LSTM over (previous token, position) embeddings, masked logits,
a value head.

The previous token comes from the observation (`controller.env.TokenEnv` puts the token just
sampled there), so every choice is conditioned on the ones before it, both through the LSTM
state and through the input. Invalid choices get a logit of FLOAT_MIN: their probability is
exactly zero, so an invalid genotype cannot be sampled.

`model_config`: hidden_size, num_layers, embedding_size, max_seq_len (>= episode length + 1:
PPO's learner adds one bootstrap step to each episode), init_scale (uniform init range, as in
Nekrasov et al.).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

FLOAT_MIN = torch.finfo(torch.float32).min


class ControllerRLModule(TorchRLModule, ValueFunctionAPI):
    def setup(self) -> None:
        obs = self.observation_space
        num_prev = int(obs["prev_token"].n)
        num_pos = int(obs["position"].n)
        num_actions = int(self.action_space.n)
        cfg = self.model_config
        self._hidden = int(cfg.get("hidden_size", 64))
        self._layers = int(cfg.get("num_layers", 1))
        emb = int(cfg.get("embedding_size", 32))

        self.token_embedding = nn.Embedding(num_prev, emb)
        self.position_embedding = nn.Embedding(num_pos, emb)
        self.lstm = nn.LSTM(emb, self._hidden, num_layers=self._layers, batch_first=True)
        self.pi_head = nn.Linear(self._hidden, num_actions)
        # a per-position bias lets the head give each position its own preferences cheaply
        self.position_bias = nn.Embedding(num_pos, num_actions)
        self.vf_head = nn.Linear(self._hidden, 1)

        scale = float(cfg.get("init_scale", 0.1))
        for p in self.parameters():
            nn.init.uniform_(p, -scale, scale)
        nn.init.zeros_(self.position_bias.weight)

    def get_initial_state(self) -> dict[str, np.ndarray]:
        zeros = np.zeros((self._layers, self._hidden), dtype=np.float32)
        return {"h": zeros, "c": zeros.copy()}

    # --- forward passes ------------------------------------------------------------------
    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        logits, features, state_out = self._logits(batch)
        return {Columns.ACTION_DIST_INPUTS: logits, Columns.STATE_OUT: state_out}

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        logits, features, state_out = self._logits(batch)
        return {
            Columns.ACTION_DIST_INPUTS: logits,
            Columns.STATE_OUT: state_out,
            Columns.EMBEDDINGS: features,
        }

    def compute_values(self, batch: dict[str, Any], embeddings: Any | None = None) -> torch.Tensor:
        if embeddings is None:
            embeddings, _ = self._features(batch)
        return self.vf_head(embeddings).squeeze(-1)

    # --- shared pieces -------------------------------------------------------------------
    def _features(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        obs = batch[Columns.OBS]
        prev = obs["prev_token"].long()
        pos = obs["position"].long()
        x = self.token_embedding(prev) + self.position_embedding(pos)  # (B, T, emb)
        state = batch[Columns.STATE_IN]
        # RLlib keeps states batch-first (B, layers, hidden); torch wants (layers, B, hidden)
        h0 = state["h"].transpose(0, 1).contiguous()
        c0 = state["c"].transpose(0, 1).contiguous()
        out, (h, c) = self.lstm(x, (h0, c0))
        return out, {"h": h.transpose(0, 1), "c": c.transpose(0, 1)}

    def _logits(self, batch: dict[str, Any]):
        features, state_out = self._features(batch)
        obs = batch[Columns.OBS]
        logits = self.pi_head(features) + self.position_bias(obs["position"].long())
        logits = masked_logits(logits, obs["action_mask"])
        return logits, features, state_out


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Invalid choices (mask 0) get FLOAT_MIN: probability exactly 0 after the softmax."""
    return torch.where(mask > 0.5, logits, torch.full_like(logits, FLOAT_MIN))
