"""Torch adaptor ops and aggregators of the auxiliary cells (docs/design.md, "The search space")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(c_in: int, c_out: int, k: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class SepConv(nn.Sequential):
    """Depthwise k x k (dilation d) -> pointwise 1x1 -> BN -> ReLU."""

    def __init__(self, c: int, k: int = 3, dilation: int = 1) -> None:
        pad = dilation * (k // 2)
        super().__init__(
            nn.Conv2d(c, c, k, padding=pad, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
        )


def deform_conv_3x3(
    x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Deformable 3x3 convolution, stride 1, padding 1, in plain torch.

    `offset` is (N, 18, H, W) with (dy, dx) pairs per kernel point in row-major kernel order,
    the layout of `torchvision.ops.deform_conv2d`. Sampling is bilinear with zeros outside.
    """
    n, c, h, w = x.shape
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, 1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, 1, w)
    ky, kx = torch.meshgrid(
        torch.arange(-1, 2, device=x.device, dtype=x.dtype),
        torch.arange(-1, 2, device=x.device, dtype=x.dtype),
        indexing="ij",
    )
    off = offset.view(n, 9, 2, h, w)
    py = ys + ky.reshape(1, 9, 1, 1) + off[:, :, 0]  # (N, 9, H, W)
    px = xs + kx.reshape(1, 9, 1, 1) + off[:, :, 1]
    # align_corners=True maps -1/+1 to the centres of the first/last pixel
    gy = 2.0 * py / max(h - 1, 1) - 1.0
    gx = 2.0 * px / max(w - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1).view(n, 9 * h, w, 2)
    cols = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    cols = cols.view(n, c, 9, h, w)
    out = torch.einsum("nckhw,ock->nohw", cols, weight.reshape(weight.shape[0], c, 9))
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


class DeformConv3x3(nn.Module):
    """Deformable 3x3 conv (offsets from a zero-initialised 3x3 conv) -> BN -> ReLU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.offset = nn.Conv2d(c, 18, 3, padding=1)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.weight = nn.Parameter(torch.empty(c, c, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(deform_conv_3x3(x, self.offset(x), self.weight)))


def make_adaptor(name: str, c: int) -> nn.Module:
    if name == "sep_conv_3x3":
        return SepConv(c, 3, 1)
    if name == "conv_1x1":
        return conv_bn_relu(c, c, 1)
    if name == "sep_conv_3x3_dil3":
        return SepConv(c, 3, 3)
    if name == "sep_conv_3x3_dil6":
        return SepConv(c, 3, 6)
    if name == "skip_connect":
        return nn.Identity()
    if name == "deform_conv_3x3":
        return DeformConv3x3(c)
    raise ValueError(f"unknown adaptor op {name!r}")


def _to_finer(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape[-2:] == b.shape[-2:]:
        return a, b
    size = a.shape[-2:] if a.shape[-2] * a.shape[-1] >= b.shape[-2] * b.shape[-1] else b.shape[-2:]
    return _resize(a, size), _resize(b, size)


def _resize(t: torch.Tensor, size) -> torch.Tensor:
    return t if t.shape[-2:] == size else F.interpolate(t, size=size, mode="bilinear", align_corners=False)


class SumAggregator(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = _to_finer(a, b)
        return a + b


class ConcatAggregator(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(2 * c, c, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = _to_finer(a, b)
        return self.reduce(torch.cat([a, b], dim=1))


def make_aggregator(name: str, c: int) -> nn.Module:
    if name == "sum":
        return SumAggregator()
    if name == "concat":
        return ConcatAggregator(c)
    raise ValueError(f"unknown aggregator {name!r}")
