"""NYUv2 in the widely used preprocessed `.npy` layout (as distributed with MTAN and LibMTL).

    root/{train,val}/image/<i>.npy    H x W x 3 float (any scale: standardised on load)
    root/{train,val}/label/<i>.npy    H x W, 13 classes 0..12, -1 = ignored
    root/{train,val}/depth/<i>.npy    H x W x 1 (or H x W), 0 = invalid
    root/{train,val}/normal/<i>.npy   H x W x 3, all-zero = invalid

`train` (795 images) is the training split a search cuts into meta-train / meta-val; `val`
(654 images) is the test split, used only by the final retrain.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from auxnas.evaluator.data.base import Split, TaskInfo

NUM_CLASSES = 13
TASKS = {
    "segmentation": TaskInfo("segmentation", "segmentation", NUM_CLASSES),
    "depth": TaskInfo("depth", "depth"),
    "normal": TaskInfo("normal", "normal"),
}
_FOLDER = {"segmentation": "label", "depth": "depth", "normal": "normal"}


def load_nyuv2(root: str | None, tasks: list[str]) -> tuple[Split, Split]:
    if not root:
        raise ValueError("data.root: the nyuv2 dataset needs data.root (the folder holding train/ and val/)")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise ValueError(f"data.root: {base} is not a directory")
    return _load_split(base / "train", tasks), _load_split(base / "val", tasks)


def _indices(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise ValueError(f"data.root: missing nyuv2 folder {folder}")
    names = [p.stem for p in folder.glob("*.npy")]
    if not names:
        raise ValueError(f"data.root: no .npy files in {folder}")
    return sorted(names, key=lambda s: (0, int(s)) if s.isdigit() else (1, s))


def _read(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"data.root: cannot read {path} ({e})") from None


def _load_split(split_dir: Path, tasks: list[str]) -> Split:
    names = _indices(split_dir / "image")
    for task in tasks:
        others = _indices(split_dir / _FOLDER[task])
        if others != names:
            missing = sorted(set(names) ^ set(others))[0]
            raise ValueError(
                f"data.root: {split_dir / _FOLDER[task]} and {split_dir / 'image'} differ (e.g. {missing}.npy)"
            )
    first = _read(split_dir / "image" / f"{names[0]}.npy")
    if first.ndim != 3 or first.shape[-1] != 3:
        raise ValueError(f"data.root: {split_dir}/image/{names[0]}.npy must be H x W x 3, got {first.shape}")
    h, w = first.shape[:2]
    n = len(names)
    images = torch.empty((n, 3, h, w), dtype=torch.float32)
    targets: dict[str, torch.Tensor] = {}
    if "segmentation" in tasks:
        targets["segmentation"] = torch.empty((n, h, w), dtype=torch.int16)
    if "depth" in tasks:
        targets["depth"] = torch.empty((n, 1, h, w), dtype=torch.float32)
    if "normal" in tasks:
        targets["normal"] = torch.empty((n, 3, h, w), dtype=torch.float32)
    for i, name in enumerate(names):
        images[i] = torch.from_numpy(_shaped(split_dir / "image" / f"{name}.npy", (h, w, 3))).permute(2, 0, 1)
        if "segmentation" in tasks:
            targets["segmentation"][i] = torch.from_numpy(
                _labels(split_dir / "label" / f"{name}.npy", (h, w))
            )
        if "depth" in tasks:
            depth = _shaped(split_dir / "depth" / f"{name}.npy", (h, w, 1))
            targets["depth"][i, 0] = torch.from_numpy(
                np.where(np.isfinite(depth[..., 0]), depth[..., 0], 0.0)
            )
        if "normal" in tasks:
            normal = _shaped(split_dir / "normal" / f"{name}.npy", (h, w, 3))
            targets["normal"][i] = torch.from_numpy(_unit_or_zero(normal)).permute(2, 0, 1)
    return Split(images, targets)


def _shaped(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    a = _read(path)
    if a.ndim == len(shape) - 1 and shape[-1] == 1:
        a = a[..., None]
    if a.shape != shape:
        raise ValueError(f"data.root: {path} has shape {a.shape}, expected {shape}")
    return a.astype(np.float32, copy=False)


def _labels(path: Path, shape: tuple[int, int]) -> np.ndarray:
    a = _read(path)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.shape != shape:
        raise ValueError(f"data.root: {path} has shape {a.shape}, expected {shape}")
    a = np.where(np.isfinite(a), a, -1).astype(np.int64)
    if a.max() >= NUM_CLASSES:
        raise ValueError(
            f"data.root: {path} has class {a.max()}; nyuv2 has classes 0..{NUM_CLASSES - 1} and -1"
        )
    return np.where(a < 0, -1, a).astype(np.int16)


def _unit_or_zero(normal: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(normal, axis=-1, keepdims=True)
    valid = np.isfinite(norm) & (norm > 1e-6)
    return np.where(valid, normal / np.where(valid, norm, 1.0), 0.0).astype(np.float32)
