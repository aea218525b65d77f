"""In-memory dataset structures shared by every loader.

Canonical tensor layouts (what every loader produces and the training loop consumes):

- `images`: float32 (N, C, H, W), standardised per channel with the training split's statistics
- `segmentation`-kind targets: int16 (N, H, W), class index, -1 = ignored pixel
- `depth`-kind targets: float32 (N, 1, H, W), metres (any unit), 0 = invalid pixel
- `normal`-kind targets: float32 (N, 3, H, W), unit vectors, all-zero = invalid pixel
- `classification`-kind targets: int64 (N,), class index
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

TASK_KINDS: tuple[str, ...] = ("segmentation", "depth", "normal", "classification")
CLASS_KINDS = ("segmentation", "classification")


@dataclass(frozen=True)
class TaskInfo:
    """A task a dataset provides: its name (as in `config.tasks`), kind and, for class kinds,
    the number of classes."""

    name: str
    kind: str
    num_classes: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {list(TASK_KINDS)}, got {self.kind!r}")
        if self.kind in CLASS_KINDS and (not isinstance(self.num_classes, int) or self.num_classes < 2):
            raise ValueError(f"task {self.name!r}: num_classes must be an integer >= 2")


@dataclass
class Split:
    images: torch.Tensor
    targets: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.images[index], {k: v[index] for k, v in self.targets.items()})

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), {k: v.to(device) for k, v in self.targets.items()})

    def nbytes(self) -> int:
        tensors = [self.images, *self.targets.values()]
        return sum(t.element_size() * t.numel() for t in tensors)


@dataclass
class Dataset:
    """The requested tasks (config order) and the train and test splits.

    `train` is what a search splits into meta-train / meta-val; `test` is for final scoring only.
    """

    name: str
    tasks: dict[str, TaskInfo]
    train: Split
    test: Split
    # derived splits and device copies, filled on demand and kept for the process's lifetime
    derived: dict = field(default_factory=dict, repr=False)

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train.images.shape[-2]), int(self.train.images.shape[-1])


def standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale both splits by the training split's per-channel mean and std (float32)."""
    train = train.float()
    dims = [0, 2, 3]
    mean = train.mean(dim=dims, keepdim=True)
    std = train.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return (train - mean) / std, (test.float() - mean) / std
