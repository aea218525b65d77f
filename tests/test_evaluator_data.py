"""Datasets: the synthetic renderer's geometry, its cache, the nyuv2 loader, custom datasets, splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from auxnas.evaluator.config import DataConfig
from auxnas.evaluator.data import clear_cache, load_dataset, search_splits
from auxnas.evaluator.data import synthetic as syn


@pytest.fixture(scope="module")
def scenes():
    return syn.generate(6, 48, seed=3)


def _points(depth: np.ndarray) -> np.ndarray:
    """Back-project every pixel with the renderer's intrinsics (camera frame)."""
    r = depth.shape[0]
    f, cx, cy = syn.camera_intrinsics(r)
    v, u = np.mgrid[0:r, 0:r] + 0.5
    return np.stack([(u - cx) / f * depth, (v - cy) / f * depth, depth], axis=-1).astype(np.float64)


def _normals_from_depth(points: np.ndarray) -> np.ndarray:
    """Normal of the local tangent plane from central differences, facing the camera."""
    du = points[1:-1, 2:] - points[1:-1, :-2]
    dv = points[2:, 1:-1] - points[:-2, 1:-1]
    n = np.cross(du, dv)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    towards_camera = np.sum(n * points[1:-1, 1:-1], axis=-1, keepdims=True) > 0
    return np.where(towards_camera, -n, n)


def test_normals_agree_with_depth_on_planes(scenes):
    checked = 0
    for depth, normal in zip(scenes["depth"], scenes["normal"], strict=True):
        points = _points(depth)
        from_depth = _normals_from_depth(points)
        stored = normal[1:-1, 1:-1]
        # pixels inside one plane: the 3x3 neighbourhood shares the stored normal n and the plane
        # offset n . p (so a box top in front of the floor, same normal, does not count)
        offset = np.sum(normal * points, axis=-1)
        h, w = depth.shape
        same = np.ones(stored.shape[:2], bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                window = (slice(1 + dy, h - 1 + dy), slice(1 + dx, w - 1 + dx))
                same &= np.abs(normal[window] - stored).max(axis=-1) < 1e-6
                same &= np.abs(offset[window] - offset[1:-1, 1:-1]) < 1e-3 * depth[1:-1, 1:-1]
        cos = np.clip(np.sum(from_depth * stored, axis=-1), -1, 1)
        angle = np.degrees(np.arccos(cos))[same]
        assert angle.size > 500
        assert angle.max() < 1.0, f"normals disagree with depth by up to {angle.max():.2f} deg"
        checked += angle.size
    assert checked > 5000


def test_scene_labels_and_normals_are_consistent(scenes):
    assert scenes["image"].dtype == np.uint8 and scenes["image"].shape == (6, 48, 48, 3)
    np.testing.assert_allclose(np.linalg.norm(scenes["normal"], axis=-1), 1.0, atol=1e-5)
    assert scenes["depth"].min() > 0
    labels = scenes["label"]
    assert labels.min() >= 0 and labels.max() < len(syn.CLASSES)
    # floor pixels face up in the world: in the camera frame (y down) they have negative y
    assert (scenes["normal"][labels == syn.FLOOR][:, 1] < -0.5).all()
    # normals face the camera: n . ray < 0
    f, cx, cy = syn.camera_intrinsics(48)
    v, u = np.mgrid[0:48, 0:48] + 0.5
    rays = np.stack([(u - cx) / f, (v - cy) / f, np.ones_like(u)], axis=-1)
    assert (np.sum(scenes["normal"] * rays, axis=-1) < 0).all()


def test_at_least_six_classes_appear_and_the_generator_is_deterministic():
    a = syn.generate(40, 32, seed=1)
    assert len(np.unique(a["label"])) >= 6
    b = syn.generate(3, 32, seed=1)
    for key in a:
        np.testing.assert_array_equal(a[key][:3], b[key])  # image i does not depend on the count
    c = syn.generate(3, 32, seed=2)
    assert not np.array_equal(b["image"], c["image"])


def test_synthetic_cache_on_disk_is_keyed_by_parameters(tmp_path):
    first = syn.load_or_generate(5, 16, 0, "normal", str(tmp_path))
    files = list(tmp_path.glob("synthetic-*.npz"))
    assert len(files) == 1
    again = syn.load_or_generate(5, 16, 0, "normal", str(tmp_path))
    np.testing.assert_array_equal(first["depth"], again["depth"])
    syn.load_or_generate(5, 16, 0, "hard", str(tmp_path))
    assert len(list(tmp_path.glob("synthetic-*.npz"))) == 2
    files[0].write_bytes(b"truncated")  # a corrupt cache file is regenerated
    np.testing.assert_array_equal(
        syn.load_or_generate(5, 16, 0, "normal", str(tmp_path))["depth"], first["depth"]
    )


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AUXNAS_CACHE_DIR", str(tmp_path))
    assert syn.cache_dir() == tmp_path / "synthetic"
    assert syn.cache_dir("/elsewhere") == syn.cache_dir("/elsewhere")


def test_load_dataset_is_cached_per_process_and_splits_are_seeded(tmp_path):
    clear_cache()
    cfg = DataConfig(num_images=20, num_test_images=5, resolution=16, root=str(tmp_path))
    ds = load_dataset(cfg, ["segmentation", "depth"])
    assert load_dataset(cfg, ["segmentation", "depth"]) is ds
    assert list(ds.tasks) == ["segmentation", "depth"] and ds.tasks["segmentation"].num_classes == 7
    assert ds.train.images.shape == (20, 3, 16, 16) and ds.test.images.shape == (5, 3, 16, 16)
    assert abs(float(ds.train.images.mean())) < 1e-4  # standardised with train statistics
    assert ds.train.targets["depth"].shape == (20, 1, 16, 16)
    meta_train, meta_val = search_splits(ds, cfg)
    assert (len(meta_train), len(meta_val)) == (16, 4)
    assert search_splits(ds, cfg)[1] is meta_val
    # disjoint and drawn from the training split only
    train_rows = {tuple(x.flatten()[:8].tolist()) for x in meta_train.images}
    val_rows = {tuple(x.flatten()[:8].tolist()) for x in meta_val.images}
    test_rows = {tuple(x.flatten()[:8].tolist()) for x in ds.test.images}
    assert not train_rows & val_rows and not (train_rows | val_rows) & test_rows
    reseeded = cfg.model_copy(update={"split_seed": 1})
    other_val = search_splits(load_dataset(reseeded, ["segmentation", "depth"]), reseeded)[1]
    assert not torch.equal(other_val.images, meta_val.images)
    with pytest.raises(ValueError, match="tasks: 'edges' is not a task of dataset 'synthetic'"):
        load_dataset(cfg, ["edges"])


def _write_nyuv2(root, counts=(5, 3), h=6, w=8, bad_label=False):
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "val"), counts, strict=True):
        for folder in ("image", "label", "depth", "normal"):
            (root / split / folder).mkdir(parents=True)
        for i in range(n):
            np.save(root / split / "image" / f"{i}.npy", rng.random((h, w, 3)).astype(np.float32))
            label = rng.integers(-1, 13, (h, w)).astype(np.float32)
            if bad_label and i == 1:
                label[0, 0] = 13
            np.save(root / split / "label" / f"{i}.npy", label)
            depth = rng.uniform(0.5, 9.0, (h, w, 1)).astype(np.float32)
            depth[0, 0] = 0.0
            np.save(root / split / "depth" / f"{i}.npy", depth)
            normal = rng.normal(size=(h, w, 3)).astype(np.float32)
            normal[1, 1] = 0.0
            np.save(root / split / "normal" / f"{i}.npy", normal)


def test_nyuv2_loader_reads_the_preprocessed_layout(tmp_path):
    _write_nyuv2(tmp_path)
    cfg = DataConfig(name="nyuv2", root=str(tmp_path))
    ds = load_dataset(cfg, ["segmentation", "depth", "normal"])
    assert ds.train.images.shape == (5, 3, 6, 8) and ds.test.images.shape == (3, 3, 6, 8)
    seg = ds.train.targets["segmentation"]
    raw = np.load(tmp_path / "train" / "label" / "2.npy")
    np.testing.assert_array_equal(seg[2].numpy(), raw.astype(np.int16))
    assert seg.min() == -1 and seg.max() <= 12 and ds.tasks["segmentation"].num_classes == 13
    assert ds.train.targets["depth"].shape == (5, 1, 6, 8) and ds.train.targets["depth"][0, 0, 0, 0] == 0
    normal = ds.train.targets["normal"]
    assert normal[0, :, 1, 1].abs().sum() == 0  # invalid stays all-zero
    np.testing.assert_allclose(normal[0, :, 2, 2].norm().item(), 1.0, atol=1e-5)
    only_depth = load_dataset(cfg, ["depth"])
    assert list(only_depth.train.targets) == ["depth"]


def test_nyuv2_loader_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="data.root"):
        load_dataset(DataConfig(name="nyuv2"), ["depth"])
    with pytest.raises(ValueError, match="data.root: missing nyuv2 folder"):
        load_dataset(DataConfig(name="nyuv2", root=str(tmp_path)), ["depth"])
    bad = tmp_path / "bad"
    _write_nyuv2(bad, bad_label=True)
    with pytest.raises(ValueError, match=r"data.root: .*1\.npy has class 13"):
        load_dataset(DataConfig(name="nyuv2", root=str(bad)), ["segmentation"])
    with pytest.raises(ValueError, match="tasks: 'classification' is not a task of dataset 'nyuv2'"):
        load_dataset(DataConfig(name="nyuv2", root=str(bad)), ["classification"])


def make_custom(data_config):
    """A custom dataset callable (used through `python:tests.test_evaluator_data:make_custom`)."""
    g = torch.Generator().manual_seed(data_config.seed)

    def split(n):
        return {
            "image": torch.rand(n, 4, 12, 12, generator=g),
            "parts": torch.randint(-1, 3, (n, 12, 12), generator=g),
            "kind": torch.randint(0, 5, (n,), generator=g),
        }

    return {
        "tasks": {
            "parts": {"kind": "segmentation", "num_classes": 3},
            "kind": {"kind": "classification", "num_classes": 5},
        },
        "train": split(10),
        "test": split(4),
    }


def broken_custom(data_config):
    return {
        "tasks": {"parts": {"kind": "segmentation", "num_classes": 3}},
        "train": {"image": np.zeros((2, 3, 4, 4))},
    }


def test_custom_dataset_callable():
    cfg = DataConfig(name="python:tests.test_evaluator_data:make_custom")
    ds = load_dataset(cfg, ["kind", "parts"])
    assert list(ds.tasks) == ["kind", "parts"] and ds.in_channels == 4
    assert ds.tasks["kind"].kind == "classification" and ds.train.targets["parts"].dtype == torch.int16
    with pytest.raises(
        ValueError, match="data.name: python:tests.test_evaluator_data:broken_custom: .*'test'"
    ):
        load_dataset(DataConfig(name="python:tests.test_evaluator_data:broken_custom"), ["parts"])
    with pytest.raises(
        ValueError, match="data.name: 'python:no_such_module:fn': cannot import module 'no_such_module'"
    ):
        load_dataset(DataConfig(name="python:no_such_module:fn"), ["parts"])
