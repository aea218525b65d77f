"""Shared encoders. Each returns ONE feature map per stage, shallow to deep.

A stage ends where the encoder downsamples (strides 2, 4, 8, ...). Once `output_stride` is
reached, later stages keep the resolution and dilate their convolutions instead (as DeepLab
does), so the deepest map has stride `output_stride`; they still count as stages.
The auxiliary modules read the LAST `model.num_aux_inputs` of these maps (shallow to deep, i.e.
`feature:0` is the shallowest of those); the main decoders read the deepest one.

- `tiny`: 4 small residual stages (16-24-32-64 channels x width_mult) for the CPU presets.
- `deep-plain`: the tiny widths, but every stage after the stem adds 3 plain conv-BN-ReLU layers
  (13 convolutions, no residual connections): deep and narrow, so the early layers are hard to
  train from the heads alone (the condition for intermediate supervision to help).
- `mobilenetv2`: MobileNetV2 (Sandler et al. 2018) with a width multiplier, 5 stages
  (16, 24, 32, 96, 320 channels at width 1), the paper's backbone.
- `resnet50`: torchvision's ResNet-50 when torchvision imports, its 4 residual stages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import nn


class Encoder(nn.Module):
    """Subclasses set `stages` (an nn.ModuleList, shallow to deep) and `feature_channels`; the
    features are the outputs of every stage."""

    feature_channels: list[int]
    stages: nn.ModuleList

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def _make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _conv_bn(
    c_in: int, c_out: int, k: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1, act=True
):
    layers: list[nn.Module] = [
        nn.Conv2d(
            c_in, c_out, k, stride, padding=dilation * (k // 2), dilation=dilation, groups=groups, bias=False
        ),
        nn.BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True) if act == "relu6" else nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Strides:
    """Turns requested strides into (stride, dilation) pairs that respect `output_stride`."""

    def __init__(self, output_stride: int) -> None:
        self.output_stride = output_stride
        self.current = 1
        self.dilation = 1

    def next(self, stride: int) -> tuple[int, int]:
        """(stride, dilation) for a layer asking for `stride`: the dilation to use *in* it."""
        dilation = self.dilation
        if stride > 1 and self.current * stride > self.output_stride:
            self.dilation *= stride
            return 1, dilation
        self.current *= stride
        return stride, dilation


class _BasicBlock(nn.Module):
    def __init__(self, c: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c, c, 3, 1, dilation), _conv_bn(c, c, 3, 1, dilation, act=False))
        self.relu = nn.ReLU(inplace=True)
        # zero-init residual (Goyal et al. 2017): every block starts as the identity, which makes
        # short trainings much less sensitive to the initialisation seed
        nn.init.zeros_(self.body[1][1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.body(x))


class _StridedStagesEncoder(Encoder, ABC):
    """Stem (stride 2), then one stage per further width: a strided conv followed by what
    `stage_body` builds at that stage's width and dilation."""

    WIDTHS = (16, 24, 32, 64)

    def __init__(self, in_channels: int, width_mult: float = 1.0, output_stride: int = 8) -> None:
        super().__init__()
        widths = [_make_divisible(w * width_mult) for w in self.WIDTHS]
        strides = _Strides(output_stride)
        stride, dil = strides.next(2)
        stages = [_conv_bn(in_channels, widths[0], 3, stride, dil)]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            stride, dil = strides.next(2)
            stages.append(
                nn.Sequential(
                    _conv_bn(c_in, c_out, 3, stride, dil), *self.stage_body(c_out, strides.dilation)
                )
            )
        self.stages = nn.ModuleList(stages)
        self.feature_channels = widths

    @abstractmethod
    def stage_body(self, c: int, dilation: int) -> list[nn.Module]:
        """The layers after a stage's strided conv, at its width `c` and `dilation`."""


class TinyEncoder(_StridedStagesEncoder):
    """Stem (stride 2), then three stages of a strided conv and one residual block."""

    def stage_body(self, c: int, dilation: int) -> list[nn.Module]:
        return [_BasicBlock(c, dilation)]


class DeepPlainEncoder(_StridedStagesEncoder):
    """Stem (stride 2), then three stages of a strided conv and `PLAIN_LAYERS` conv-BN-ReLU
    layers. No skip connections: a gradient from the heads reaches the stem through all 13
    convolutions, unlike `tiny`, whose zero-initialised residual blocks start as identities."""

    PLAIN_LAYERS = 3

    def stage_body(self, c: int, dilation: int) -> list[nn.Module]:
        return [_conv_bn(c, c, 3, 1, dilation) for _ in range(self.PLAIN_LAYERS)]


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, dilation: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.use_residual = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(c_in, hidden, 1, act="relu6"))
        layers += [
            _conv_bn(hidden, hidden, 3, stride, dilation, groups=hidden, act="relu6"),
            _conv_bn(hidden, c_out, 1, act=False),
        ]
        self.conv = nn.Sequential(*layers)
        if self.use_residual:  # zero-init residual, as in the tiny encoder
            nn.init.zeros_(self.conv[-1][1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2Encoder(Encoder):
    # (expansion t, channels c, repeats n, stride s) per block group, as in the paper's Table 2
    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, in_channels: int, width_mult: float = 1.0, output_stride: int = 8) -> None:
        super().__init__()
        strides = _Strides(output_stride)
        stem_c = _make_divisible(32 * width_mult)
        stride, dil = strides.next(2)
        current: list[nn.Module] = [_conv_bn(in_channels, stem_c, 3, stride, dil, act="relu6")]
        stages: list[nn.Module] = []
        channels: list[int] = []
        c_in = stem_c
        for t, c, n, s in self.SETTINGS:
            c_out = _make_divisible(c * width_mult)
            for i in range(n):
                want = s if i == 0 else 1
                if want > 1:  # a downsampling block starts a new stage
                    stages.append(nn.Sequential(*current))
                    channels.append(c_in)
                    current = []
                stride, dil = strides.next(want)
                current.append(_InvertedResidual(c_in, c_out, stride, t, dil))
                c_in = c_out
        stages.append(nn.Sequential(*current))
        channels.append(c_in)
        self.stages = nn.ModuleList(stages)
        self.feature_channels = channels


class ResNet50Encoder(Encoder):
    def __init__(self, in_channels: int, output_stride: int = 8) -> None:
        super().__init__()
        try:
            from torchvision.models import resnet50
        except ImportError:
            raise ValueError("model.encoder: resnet50 needs torchvision, which is not installed") from None
        dilate = {
            4: [True, True, True],
            8: [False, True, True],
            16: [False, False, True],
            32: [False, False, False],
        }[output_stride]
        net = resnet50(weights=None, replace_stride_with_dilation=dilate, zero_init_residual=True)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.feature_channels = [256, 512, 1024, 2048]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def build_encoder(model_cfg, in_channels: int) -> Encoder:
    name = model_cfg.encoder
    if name == "tiny":
        encoder: Encoder = TinyEncoder(in_channels, model_cfg.width_mult, model_cfg.output_stride)
    elif name == "deep-plain":
        encoder = DeepPlainEncoder(in_channels, model_cfg.width_mult, model_cfg.output_stride)
    elif name == "mobilenetv2":
        encoder = MobileNetV2Encoder(in_channels, model_cfg.width_mult, model_cfg.output_stride)
    elif name == "resnet50":
        encoder = ResNet50Encoder(in_channels, model_cfg.output_stride)
    else:
        raise ValueError(f"model.encoder: unknown encoder {name!r}")
    if model_cfg.pretrained:
        load_pretrained(encoder, model_cfg.pretrained)
    return encoder


def load_pretrained(encoder: Encoder, path: str) -> None:
    """Load a local state_dict (or a checkpoint holding one under 'state_dict' / 'encoder')."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"model.pretrained: {file} is not a file")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"model.pretrained: cannot load {file} ({type(e).__name__}: {e})") from None
    for key in ("encoder", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"model.pretrained: {file} does not hold a state_dict")
    state = {k.removeprefix("encoder."): v for k, v in state.items()}
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise ValueError(f"model.pretrained: {file} does not match this encoder ({first})") from None
