import torch
from torch import nn

from auxnas.evaluator.config import ModelConfig
from auxnas.evaluator.networks.encoders import DeepPlainEncoder, TinyEncoder, build_encoder


def test_deep_plain_has_the_tiny_maps_and_no_shortcuts():
    cfg = ModelConfig(encoder="deep-plain", width_mult=0.5, output_stride=4)
    enc = build_encoder(cfg, 3)
    assert isinstance(enc, DeepPlainEncoder)
    tiny = TinyEncoder(3, 0.5, 4)
    assert enc.feature_channels == tiny.feature_channels == [8, 16, 16, 32]
    feats = enc(torch.randn(2, 3, 32, 32))
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 16, 16), (16, 8, 8), (16, 8, 8), (32, 8, 8)]
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 3 * (1 + DeepPlainEncoder.PLAIN_LAYERS)


def test_every_layer_gets_a_gradient():
    enc = DeepPlainEncoder(3, 0.5, 4)
    sum(f.mean() for f in enc(torch.randn(2, 3, 32, 32))).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())
