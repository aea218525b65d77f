import hashlib

import numpy as np
import pytest

from auxnas.evaluator.data import synthetic as syn

N, R = 48, 32


@pytest.fixture(scope="module")
def scenes():
    return syn.generate(N, R, seed=5, difficulty="compete")


def _digest(arrays):
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(arrays[k].tobytes())
    return h.hexdigest()[:16]


def test_seeded_and_image_i_independent_of_the_set_size(scenes):
    again = syn.generate(N, R, seed=5, difficulty="compete")
    assert all(np.array_equal(scenes[k], again[k]) for k in scenes)
    other = syn.generate(N, R, seed=6, difficulty="compete")
    assert not np.array_equal(scenes["image"], other["image"])
    first = syn.generate(4, R, seed=5, difficulty="compete")
    assert np.array_equal(first["label"], scenes["label"][:4])


def test_cached_on_disk_under_its_own_key(tmp_path, monkeypatch):
    a = syn.load_or_generate(6, 16, 1, "compete", root=str(tmp_path))
    assert syn.generation_key(6, 16, 1, "compete") != syn.generation_key(6, 16, 1, "normal")
    (cached,) = tmp_path.glob("synthetic-*.npz")
    assert syn.generation_key(6, 16, 1, "compete") in cached.name

    def no_generation(*args, **kwargs):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(syn, "generate", no_generation)
    b = syn.load_or_generate(6, 16, 1, "compete", root=str(tmp_path))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_existing_difficulties_are_unchanged():
    # digests of generate(6, 24, 3, d) before `compete` was added: their caches stay valid
    assert _digest(syn.generate(6, 24, 3, "normal")) == "9fdd9a40626e373f"
    assert _digest(syn.generate(6, 24, 3, "hard")) == "2717170852769a11"


def test_unknown_difficulty_names_the_field():
    with pytest.raises(ValueError, match="data.difficulty"):
        syn.generate(2, 16, 0, "impossible")


def test_geometry_labels_are_consistent(scenes):
    depth, normal = scenes["depth"], scenes["normal"]
    assert np.isfinite(depth).all() and (depth > 0).all()
    assert np.allclose(np.linalg.norm(normal, axis=-1), 1.0, atol=1e-4)
    f, cx, cy = syn.camera_intrinsics(R)
    v, u = np.mgrid[0:R, 0:R] + 0.5
    rays = np.stack([(u - cx) / f, (v - cy) / f, np.ones_like(u)], axis=-1)
    # every visible surface faces the camera
    assert (np.einsum("nhwc,hwc->nhw", normal, rays) < 1e-6).all()


def _step_differences(image, label, cls):
    """Mean |luminance change| of one-pixel steps inside class `cls` along 4 directions."""
    lum = image.astype(float).mean(-1)
    out = []
    for dv, du in ((0, 1), (1, 1), (1, 0), (1, -1)):  # 0, 45, 90, 135 degrees (v down)
        a = lum[:, 1:-1, 1:-1]
        b = np.roll(np.roll(lum, -dv, 1), -du, 2)[:, 1:-1, 1:-1]
        la = label[:, 1:-1, 1:-1]
        lb = np.roll(np.roll(label, -dv, 1), -du, 2)[:, 1:-1, 1:-1]
        inside = (la == cls) & (lb == cls)
        out.append(np.abs(a - b)[inside].mean())
    return np.array(out)


def test_object_class_is_written_in_the_stripe_orientation(scenes):
    """The class is learnable from the image: inside each class, luminance is flattest along
    its stripes, i.e. perpendicular to the stripes' wave vector."""
    along = {syn.CABINET: 2, syn.TABLE: 3, syn.SPHERE: 0, syn.CYLINDER: 1}
    for cls, direction in along.items():
        diffs = _step_differences(scenes["image"], scenes["label"], cls)
        assert int(np.argmin(diffs)) == direction, (syn.CLASSES[cls], diffs)
        assert diffs.max() > 2.0 * diffs.min()


def test_object_class_is_not_a_function_of_the_geometry(scenes):
    """Segmentation cannot be copied from depth/normal labels: pixels of the same surface
    orientation carry every object class, none of them dominant."""
    label, normal = scenes["label"].ravel(), scenes["normal"].reshape(-1, 3)
    objects = label >= syn.CABINET
    bins = np.round(normal[objects] * 2).astype(int)  # coarse orientation cells
    keys = bins[:, 0] * 25 + bins[:, 1] * 5 + bins[:, 2]
    classes = label[objects]
    populated = 0
    for k in np.unique(keys):
        in_cell = classes[keys == k]
        if len(in_cell) < 200:
            continue
        populated += 1
        share = np.bincount(in_cell - syn.CABINET, minlength=4) / len(in_cell)
        assert (share > 0.05).sum() >= 3 and share.max() < 0.7, (k, share)
    assert populated >= 3


def test_the_normal_difficulty_ties_class_to_shape_but_compete_does_not(scenes):
    """The contrast that makes `compete`: in `normal`, spheres (curved normals) are class
    `sphere`; in `compete` a class is drawn independently of the shape."""
    classes_with_curved = []
    for arrays in (syn.generate(N, R, seed=5, difficulty="normal"), scenes):
        label, normal = arrays["label"], arrays["normal"]
        # a downward-facing normal (y > 0.5, camera y down) is only on the underside of a floating sphere
        under = (normal[..., 1] > 0.5) & (label >= syn.CABINET)
        classes_with_curved.append(set(np.unique(label[under]).tolist()))
    normal_classes, compete_classes = classes_with_curved
    assert normal_classes <= {syn.SPHERE}
    assert len(compete_classes) >= 2
