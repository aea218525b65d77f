"""The torch builder: every op, full modules, the plain-torch deformable conv."""

from __future__ import annotations

import importlib.util
import random

import pytest
import torch
import torch.nn.functional as F

from auxnas.search_space import ADAPTOR_OPS, AGGREGATORS, SearchSpace, basic_genotype, sample_genotype
from auxnas.search_space.builder import AuxiliaryModules, count_parameters
from auxnas.search_space.ops import DeformConv3x3, deform_conv_3x3, make_adaptor, make_aggregator


@pytest.mark.parametrize("op", ADAPTOR_OPS)
@pytest.mark.parametrize("hw", [(8, 8), (13, 7)])
def test_every_adaptor_forward_backward_keeps_shape(op, hw):
    m = make_adaptor(op, 8)
    x = torch.randn(2, 8, *hw, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    if op != "skip_connect":
        assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize("agg", AGGREGATORS)
def test_aggregators_resize_to_the_finer_input(agg):
    m = make_aggregator(agg, 4)
    a, b = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 16, 12)
    assert m(a, b).shape == (2, 4, 16, 12)
    assert m(b, a).shape == (2, 4, 16, 12)


FEATURES = [(16, 32, 32), (24, 16, 16), (32, 8, 8)]
TASKS = {"segmentation": 7, "depth": 1, "normal": 3}


@pytest.mark.parametrize("seed", range(4))
def test_random_genotype_module_forward_backward(seed):
    space = SearchSpace(3, tuple(TASKS))
    g = sample_genotype(space, random.Random(seed))
    aux = AuxiliaryModules(g, [c for c, _, _ in FEATURES], TASKS, aux_channels=16)
    feats = [torch.randn(2, c, h, w, requires_grad=True) for c, h, w in FEATURES]
    out = aux(feats, (64, 48))
    assert {k: tuple(v.shape) for k, v in out.items()} == {t: (2, c, 64, 48) for t, c in TASKS.items()}
    sum(v.square().mean() for v in out.values()).backward()
    assert all(torch.isfinite(f.grad).all() for f in feats if f.grad is not None)
    assert any(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)


def test_parameter_counts_add_up_and_basic_has_expected_structure():
    space = SearchSpace(3, tuple(TASKS))
    aux = AuxiliaryModules(basic_genotype(space), [16, 24, 32], TASKS, aux_channels=16)
    counts = aux.parameter_counts()
    assert counts["total"] == count_parameters(aux) == sum(counts[t] for t in TASKS)
    assert len(aux.cells["depth"]) == 3 and len(aux.stems["normal"]) == 3


def test_builder_rejects_mismatched_features():
    space = SearchSpace(3, tuple(TASKS))
    with pytest.raises(ValueError, match="feature_channels"):
        AuxiliaryModules(basic_genotype(space), [16, 24], TASKS)
    with pytest.raises(ValueError, match="task_channels"):
        AuxiliaryModules(basic_genotype(space), [16, 24, 32], {"depth": 1})


def test_deform_conv_with_zero_offsets_equals_conv3x3():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 9, 11)
    w = torch.randn(6, 5, 3, 3)
    b = torch.randn(6)
    off = torch.zeros(2, 18, 9, 11)
    torch.testing.assert_close(
        deform_conv_3x3(x, off, w, b), F.conv2d(x, w, b, padding=1), atol=1e-4, rtol=1e-4
    )


def test_deform_conv_integer_offset_shifts_sampling():
    x = torch.randn(1, 1, 6, 6)
    w = torch.zeros(1, 1, 3, 3)
    w[0, 0, 1, 1] = 1.0  # centre tap only
    off = torch.zeros(1, 18, 6, 6)
    off[:, 8] = 1.0  # centre kernel point (index 4): dy = +1
    y = deform_conv_3x3(x, off, w)
    torch.testing.assert_close(y[0, 0, :-1], x[0, 0, 1:])
    assert torch.all(y[0, 0, -1] == 0)


def test_deform_module_starts_as_plain_conv():
    m = DeformConv3x3(4).eval()
    x = torch.randn(1, 4, 7, 7)
    expected = F.relu(m.bn(F.conv2d(x, m.weight, padding=1)))
    torch.testing.assert_close(m(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="torchvision is not installed")
def test_deform_conv_matches_torchvision():
    try:
        from torchvision.ops import deform_conv2d
    except Exception as e:  # an install that does not import beside this torch
        pytest.skip(f"torchvision does not import here: {e}")
    torch.manual_seed(0)
    x, w = torch.randn(2, 3, 8, 9), torch.randn(4, 3, 3, 3)
    off = torch.randn(2, 18, 8, 9) * 1.5
    torch.testing.assert_close(
        deform_conv_3x3(x, off, w), deform_conv2d(x, off, w, padding=1), atol=1e-4, rtol=1e-4
    )
