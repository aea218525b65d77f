"""Evaluate candidates on your own data and tasks through `data.name: python:module:callable`.

    python examples/custom_dataset.py

`make_dataset(data_config)` below is such a callable: it returns the structure documented in
`evaluator/data/custom.py` (task declarations plus train and test arrays). Here the data are
toy "blobs" images with two tasks of our own naming: `parts`, a 3-class segmentation
(background, disc, square), and `count`, a 4-way classification of how many shapes an image
holds. The script evaluates the Joint baseline and the `basic` auxiliary structure on them.

In a preset you would write

    tasks: [parts, count]
    data: {name: "python:custom_dataset:make_dataset"}

with this file's folder on PYTHONPATH (every Ray worker imports the module).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def _blobs(n: int, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size]
    images = rng.normal(0.0, 0.08, (n, 3, size, size)).astype(np.float32)
    parts = np.zeros((n, size, size), np.int64)
    count = rng.integers(0, 4, n)  # 0..3 shapes
    for i in range(n):
        for _ in range(count[i]):
            cy, cx, r = rng.integers(4, size - 4, 2).tolist() + [int(rng.integers(2, 5))]
            if rng.random() < 0.5:
                mask, cls = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, 1
            else:
                mask, cls = (abs(yy - cy) <= r) & (abs(xx - cx) <= r), 2
            parts[i][mask] = cls
            images[i][:, mask] += rng.uniform(0.3, 1.0, (3, 1)).astype(np.float32)
    parts[:, 0, :] = -1  # a row of unlabelled pixels, to show the ignore index
    return {"image": images, "parts": parts, "count": count}


def make_dataset(data_config) -> dict:
    """The `python:` callable: gets the preset's `data` section, returns tasks and splits."""
    rng = np.random.default_rng(data_config.seed)
    size = data_config.resolution
    return {
        "tasks": {
            "parts": {"kind": "segmentation", "num_classes": 3},
            "count": {"kind": "classification", "num_classes": 4},
        },
        "train": _blobs(data_config.num_images, size, rng),
        "test": _blobs(data_config.num_test_images, size, rng),
    }


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # make `custom_dataset` importable
    from auxnas.evaluator.config import EvalConfig
    from auxnas.evaluator.evaluate import evaluate
    from auxnas.search_space import basic_genotype

    config = EvalConfig.model_validate(
        {
            "tasks": ["parts", "count"],
            "data": {
                "name": "python:custom_dataset:make_dataset",
                "num_images": 160,
                "num_test_images": 40,
                "resolution": 24,
            },
            "model": {"encoder": "tiny", "num_aux_inputs": 3, "aux_channels": 16},
            "train": {"steps": 60, "batch_size": 16, "lr": 0.05},
        }
    )
    space = config.search_space()
    for label, genotype in (("Joint (no auxiliary modules)", None), ("basic", basic_genotype(space))):
        r = evaluate(config, genotype)
        if not r.ok:
            raise SystemExit(f"{label}: {r.error['type']}: {r.error['message']}")
        print(
            f"{label:30s} reward {r.reward:.4f}  parts mIoU {r.metrics['parts']['miou']:.4f}  "
            f"count accuracy {r.metrics['count']['accuracy']:.4f}  aux params {r.aux_params:,}  {r.seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
