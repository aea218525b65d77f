"""Your own dataset and tasks: `data.name: python:package.module:callable`, or the name of a
dataset plugin registered as an entry point of `auxnas.datasets` (see `evaluator.plugins`).

The callable is loaded (the module must be importable in every Ray worker, e.g. installed or
on `PYTHONPATH`) and called once per worker process as `callable(data_config)`, where
`data_config` is the preset's `data` section (`evaluator.config.DataConfig`; use `root`,
`seed`, ... as you like). It returns a mapping:

    {
        "tasks": {                        # every task the data provides, by name
            "<name>": {"kind": "segmentation", "num_classes": 5},
            "<name>": {"kind": "depth"},
            "<name>": {"kind": "normal"},
            "<name>": {"kind": "classification", "num_classes": 10},
        },
        "train": {"image": ..., "<name>": ..., ...},   # cut into meta-train / meta-val by a search
        "test":  {"image": ..., "<name>": ..., ...},   # only the final retrain scores on it
    }

Arrays are numpy arrays or torch tensors with N images each, all of the same H x W:

- `image`: float (N, C, H, W), any scale (standardised per channel with train statistics)
- `segmentation`: integer (N, H, W), class index in [0, num_classes), -1 = ignored pixel
- `depth`: float (N, H, W) or (N, 1, H, W), 0 = invalid pixel
- `normal`: float (N, 3, H, W), all-zero = invalid pixel (others are normalised to unit length)
- `classification`: integer (N,), class index

`config.tasks` picks tasks by name (any subset, in the order the trials should use). A runnable
example is `examples/custom_dataset.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from auxnas.evaluator.data.base import TASK_KINDS, Split, TaskInfo
from auxnas.evaluator.plugins import DATASETS, PluginError, load_callable


class CustomDataError(ValueError):
    pass


def load_custom(spec: str, data_config: Any) -> tuple[dict[str, TaskInfo], Split, Split]:
    """(all tasks the callable declares, train split, test split)."""
    try:
        fn = load_callable(spec, DATASETS)
    except PluginError as e:
        raise CustomDataError(f"data.name: {e}") from None
    where = f"data.name: {spec}"
    try:
        doc = fn(data_config)
    except Exception as e:
        raise CustomDataError(f"{where}: the callable raised {type(e).__name__}: {e}") from None
    if not isinstance(doc, Mapping):
        raise CustomDataError(
            f"{where}: must return a mapping with 'tasks', 'train' and 'test', got {type(doc).__name__}"
        )
    for key in ("tasks", "train", "test"):
        if key not in doc:
            raise CustomDataError(f"{where}: the returned mapping has no {key!r}")
    tasks = _tasks(doc["tasks"], where)
    train = _split(doc["train"], tasks, f"{where}: train")
    test = _split(doc["test"], tasks, f"{where}: test")
    if train.images.shape[1:] != test.images.shape[1:]:
        raise CustomDataError(f"{where}: train and test images differ in shape")
    return tasks, train, test


def _tasks(doc: Any, where: str) -> dict[str, TaskInfo]:
    if not isinstance(doc, Mapping) or not doc:
        raise CustomDataError(
            f"{where}: 'tasks' must be a non-empty mapping of name -> {{kind, num_classes}}"
        )
    tasks = {}
    for name, spec in doc.items():
        if not isinstance(name, str) or not name or ":" in name or name == "image":
            raise CustomDataError(f"{where}: tasks: invalid task name {name!r}")
        if not isinstance(spec, Mapping) or spec.get("kind") not in TASK_KINDS:
            raise CustomDataError(f"{where}: tasks.{name}.kind: must be one of {list(TASK_KINDS)}")
        try:
            tasks[name] = TaskInfo(name, spec["kind"], spec.get("num_classes"))
        except ValueError as e:
            raise CustomDataError(f"{where}: tasks.{name}: {str(e).split(': ', 1)[-1]}") from None
    return tasks


def _tensor(value: Any, where: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise CustomDataError(f"{where}: must be a numpy array or torch tensor, got {type(value).__name__}")


def _split(doc: Any, tasks: dict[str, TaskInfo], where: str) -> Split:
    if not isinstance(doc, Mapping) or "image" not in doc:
        raise CustomDataError(f"{where}: must be a mapping with 'image' and one array per task")
    images = _tensor(doc["image"], f"{where}.image")
    if images.ndim != 4 or not images.is_floating_point():
        raise CustomDataError(
            f"{where}.image: must be float (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    n, _, h, w = images.shape
    targets = {}
    for name, info in tasks.items():
        if name not in doc:
            raise CustomDataError(f"{where}: no array for task {name!r}")
        targets[name] = _target(_tensor(doc[name], f"{where}.{name}"), info, n, h, w, f"{where}.{name}")
    return Split(images.float(), targets)


def _target(t: torch.Tensor, info: TaskInfo, n: int, h: int, w: int, where: str) -> torch.Tensor:
    if info.kind == "segmentation":
        if t.shape != (n, h, w) or t.is_floating_point():
            raise CustomDataError(
                f"{where}: must be integer (N, H, W) = {(n, h, w)}, got {t.dtype} {tuple(t.shape)}"
            )
        if int(t.max()) >= info.num_classes or int(t.min()) < -1:
            raise CustomDataError(f"{where}: class indices must be in [-1, {info.num_classes})")
        return t.to(torch.int16)
    if info.kind == "classification":
        if t.shape != (n,) or t.is_floating_point():
            raise CustomDataError(f"{where}: must be integer (N,) = ({n},), got {t.dtype} {tuple(t.shape)}")
        if int(t.max()) >= info.num_classes or int(t.min()) < 0:
            raise CustomDataError(f"{where}: class indices must be in [0, {info.num_classes})")
        return t.long()
    if info.kind == "depth":
        if t.ndim == 3:
            t = t[:, None]
        if t.shape != (n, 1, h, w):
            raise CustomDataError(f"{where}: must be (N, H, W) or (N, 1, H, W) for N={n}, H={h}, W={w}")
        t = t.float()
        return torch.where(torch.isfinite(t), t, torch.zeros_like(t))
    if t.shape != (n, 3, h, w):
        raise CustomDataError(f"{where}: must be (N, 3, H, W) = {(n, 3, h, w)}, got {tuple(t.shape)}")
    t = t.float()
    norm = t.norm(dim=1, keepdim=True)
    valid = torch.isfinite(norm) & (norm > 1e-6)
    return torch.where(valid, t / torch.where(valid, norm, torch.ones_like(norm)), torch.zeros_like(t))
