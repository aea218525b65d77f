"""Datasets for evaluation: `load_dataset(data_cfg, tasks) -> Dataset` (see `base` for layouts).

Loaded datasets are cached per process, keyed by the data config and the task list, so a Ray
worker that evaluates many candidates prepares its tensors once (`search_splits` and the device
copies made by the training loop are cached on the `Dataset` object too).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import torch

from auxnas.evaluator.data.base import TASK_KINDS, Dataset, Split, TaskInfo, standardise
from auxnas.evaluator.data.split import meta_split

__all__ = ["TASK_KINDS", "Dataset", "Split", "TaskInfo", "clear_cache", "load_dataset", "search_splits"]

_CACHE: OrderedDict[str, Dataset] = OrderedDict()
_CACHE_SIZE = 2
_LOCK = threading.Lock()


def load_dataset(data_cfg, tasks: Sequence[str]) -> Dataset:
    """The dataset of `data_cfg` restricted to `tasks` (in that order); ValueError naming the
    field when a task is not provided or the files are wrong."""
    key = data_cfg.model_dump_json() + "|" + ",".join(tasks)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    dataset = _load(data_cfg, list(tasks))
    with _LOCK:
        _CACHE[key] = dataset
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return dataset


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


def search_splits(dataset: Dataset, data_cfg) -> tuple[Split, Split]:
    """(meta_train, meta_val) of the training split, cached on the dataset."""
    key = ("meta", data_cfg.meta_val_fraction, data_cfg.split_seed)
    if key not in dataset.derived:
        dataset.derived[key] = meta_split(dataset.train, data_cfg.meta_val_fraction, data_cfg.split_seed)
    return dataset.derived[key]


def _load(data_cfg, tasks: list[str]) -> Dataset:
    name = data_cfg.name
    if name == "synthetic":
        available, train, test = _synthetic(data_cfg)
    elif name == "nyuv2":
        from auxnas.evaluator.data.nyuv2 import TASKS, load_nyuv2

        available = TASKS
        _check_tasks(name, available, tasks)
        train, test = load_nyuv2(data_cfg.root, tasks)
    else:
        from auxnas.evaluator.data.custom import load_custom

        available, train, test = load_custom(name, data_cfg)
    _check_tasks(name, available, tasks)
    if data_cfg.crop_size is not None:
        h, w = train.images.shape[-2:]
        if data_cfg.crop_size[0] > h or data_cfg.crop_size[1] > w:
            raise ValueError(f"data.crop_size: {data_cfg.crop_size} is larger than the {h}x{w} images")
    train_images, test_images = standardise(train.images, test.images)
    return Dataset(
        name=name,
        tasks={t: available[t] for t in tasks},
        train=Split(train_images, {t: train.targets[t] for t in tasks}),
        test=Split(test_images, {t: test.targets[t] for t in tasks}),
    )


def _check_tasks(name: str, available: dict[str, TaskInfo], tasks: list[str]) -> None:
    for t in tasks:
        if t not in available:
            raise ValueError(
                f"tasks: {t!r} is not a task of dataset {name!r} (it has {', '.join(available)})"
            )


def _synthetic(data_cfg) -> tuple[dict[str, TaskInfo], Split, Split]:
    from auxnas.evaluator.data import synthetic as syn

    tasks = {
        "segmentation": TaskInfo("segmentation", "segmentation", len(syn.CLASSES)),
        "depth": TaskInfo("depth", "depth"),
        "normal": TaskInfo("normal", "normal"),
        "classification": TaskInfo("classification", "classification", len(syn.OBJECT_CLASSES)),
    }
    # train and test are separate streams, so growing one never changes the other
    parts = []
    for stream, count in ((0, data_cfg.num_images), (1, data_cfg.num_test_images)):
        arrays = syn.load_or_generate(
            count, data_cfg.resolution, data_cfg.seed * 2 + stream, data_cfg.difficulty, data_cfg.root
        )
        parts.append(
            Split(
                torch.from_numpy(arrays["image"]).permute(0, 3, 1, 2).float() / 255.0,
                {
                    "segmentation": torch.from_numpy(arrays["label"]).to(torch.int16),
                    "depth": torch.from_numpy(arrays["depth"])[:, None].float(),
                    "normal": torch.from_numpy(arrays["normal"]).permute(0, 3, 1, 2).contiguous(),
                    "classification": torch.from_numpy(arrays["classification"]).long(),
                },
            )
        )
    return tasks, parts[0], parts[1]
