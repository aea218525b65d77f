"""Training-time augmentation on whole batches: random horizontal flip and random crop.

Draws come from the trial's seeded generator, so every candidate of a search sees the same
augmented batches. A horizontal mirror negates the x (image-horizontal) component of normals.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def augment(
    images: torch.Tensor,
    targets: Mapping[str, torch.Tensor],
    kinds: Mapping[str, str],
    generator: torch.Generator,
    crop_size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    n = images.shape[0]
    flip = (torch.rand(n, generator=generator) < 0.5).to(images.device)
    out_targets = {}
    images = torch.where(flip.view(n, 1, 1, 1), images.flip(-1), images)
    for name, t in targets.items():
        kind = kinds[name]
        if kind == "classification":
            out_targets[name] = t
            continue
        mask = flip.view(n, *([1] * (t.dim() - 1)))
        flipped = t.flip(-1)
        if kind == "normal":
            flipped = flipped * torch.tensor([-1.0, 1.0, 1.0], device=t.device).view(1, 3, 1, 1)
        out_targets[name] = torch.where(mask, flipped, t)
    if crop_size is not None:
        h, w = images.shape[-2:]
        ch, cw = crop_size
        if (ch, cw) != (h, w):
            top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
            images = images[..., top : top + ch, left : left + cw]
            out_targets = {
                k: v if kinds[k] == "classification" else v[..., top : top + ch, left : left + cw]
                for k, v in out_targets.items()
            }
    return images, out_targets
