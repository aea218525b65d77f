"""Procedurally rendered indoor-like scenes with RGB, semantics, metric depth and normals.

Each image ray-casts a closed room (floor, walls, ceiling) holding a few boxes, spheres and
vertical cylinders, fully vectorised over pixels in numpy. Every label comes from the same
geometry: `depth` is the metric z-depth of the first hit along the pixel's ray, `normal` is the
analytic surface normal there, `label` is the class of the surface that was hit. RGB is
Lambertian shading of textured, class-tinted albedo under a point light plus ambient light and
sensor noise, so colour helps but does not give the class away (in `hard`, not at all).

Conventions: camera frame x right, y down, z forward (OpenCV); normals are unit vectors in
the camera frame pointing towards the camera; depth in metres. The intrinsics are those of a
60-degree horizontal field of view: `f = (W / 2) / tan(30 deg)`, principal point at the centre,
pixel centres at integer + 0.5 (`camera_intrinsics`).

Arrays are cached on disk keyed by a hash of every generating parameter, in `data.root`, or
`$AUXNAS_CACHE_DIR/synthetic`, or `~/.cache/auxnas/synthetic`.

`compete` (see `render_compete_scene`) is built so that the tasks compete for a shared encoder:
an object's class is decided by a cue that depth and normals must ignore, and the geometry by a
cue that segmentation must ignore.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auxnas.evaluator import defaults

GENERATOR_VERSION = 3
CLASSES: tuple[str, ...] = ("floor", "wall", "ceiling", "cabinet", "table", "sphere", "cylinder")
OBJECT_CLASSES: tuple[str, ...] = ("cabinet", "table", "sphere", "cylinder")
FLOOR, WALL, CEILING, CABINET, TABLE, SPHERE, CYLINDER = range(len(CLASSES))
HFOV_DEG = 60.0
DIFFICULTIES = ("normal", "hard", "compete")

# albedo ranges per class in HSV-like terms: (hue lo, hue hi, saturation lo, hi, value lo, hi)
_PALETTE = {
    FLOOR: (0.05, 0.12, 0.3, 0.6, 0.35, 0.65),
    WALL: (0.0, 1.0, 0.05, 0.25, 0.65, 0.9),
    CEILING: (0.0, 1.0, 0.0, 0.08, 0.85, 0.98),
    CABINET: (0.04, 0.10, 0.45, 0.8, 0.3, 0.6),
    TABLE: (0.0, 1.0, 0.1, 0.5, 0.45, 0.85),
    SPHERE: (0.0, 1.0, 0.6, 0.95, 0.6, 0.95),
    CYLINDER: (0.5, 0.7, 0.1, 0.45, 0.5, 0.85),
}


def camera_intrinsics(resolution: int) -> tuple[float, float, float]:
    """(f, cx, cy) in pixels for a square image of side `resolution`."""
    f = (resolution / 2.0) / math.tan(math.radians(HFOV_DEG / 2.0))
    return f, resolution / 2.0, resolution / 2.0


def cache_dir(root: str | None = None) -> Path:
    if root:
        return Path(root).expanduser()
    return defaults.cache_dir("synthetic")


def generation_key(num_images: int, resolution: int, seed: int, difficulty: str) -> str:
    params = {
        "version": GENERATOR_VERSION,
        "num_images": num_images,
        "resolution": resolution,
        "seed": seed,
        "difficulty": difficulty,
    }
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def load_or_generate(
    num_images: int, resolution: int, seed: int, difficulty: str = "normal", root: str | None = None
) -> dict[str, np.ndarray]:
    """The generated arrays, from the disk cache when an identical set was generated before."""
    directory = cache_dir(root)
    path = directory / f"synthetic-{generation_key(num_images, resolution, seed, difficulty)}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):  # a truncated file from a killed writer: regenerate
            pass
    arrays = generate(num_images, resolution, seed, difficulty)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # write-then-rename: workers generating the same set at once never read a partial file
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs regeneration next time
    return arrays


def generate(
    num_images: int, resolution: int, seed: int, difficulty: str = "normal"
) -> dict[str, np.ndarray]:
    """`image` (N,H,W,3) uint8, `label` (N,H,W) int8, `depth` (N,H,W) float32 metres,
    `normal` (N,H,W,3) float32 unit camera-frame, `classification` (N,) int64 (index into
    OBJECT_CLASSES of the object covering the most pixels)."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"data.difficulty: must be one of {list(DIFFICULTIES)}, got {difficulty!r}")
    n, r = num_images, resolution
    out = {
        "image": np.empty((n, r, r, 3), np.uint8),
        "label": np.empty((n, r, r), np.int8),
        "depth": np.empty((n, r, r), np.float32),
        "normal": np.empty((n, r, r, 3), np.float32),
        "classification": np.empty((n,), np.int64),
    }
    rays = _camera_rays(r)
    # one child stream per image: image i is the same whatever num_images is
    for i, child in enumerate(np.random.SeedSequence([seed, GENERATOR_VERSION]).spawn(n)):
        rng = np.random.default_rng(child)
        while True:
            if difficulty == "compete":
                scene = render_compete_scene(rng, rays, r)
            else:
                scene = render_scene(rng, rays, r, difficulty)
            if scene is not None:
                break
        for k in out:
            out[k][i] = scene[k]
    return out


def _camera_rays(r: int) -> np.ndarray:
    f, cx, cy = camera_intrinsics(r)
    v, u = np.mgrid[0:r, 0:r].astype(np.float64) + 0.5
    return np.stack([(u - cx) / f, (v - cy) / f, np.ones_like(u)], axis=-1).reshape(-1, 3)


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


_NEAR = -1.0  # the room's back wall, behind the camera (z)


class _Hits:
    """Nearest hit so far per ray: distance, class, world normal, albedo."""

    def __init__(self, n: int) -> None:
        self.t = np.full(n, np.inf)
        self.cls = np.full(n, -1, np.int64)
        self.normal = np.zeros((n, 3))
        self.albedo = np.zeros((n, 3))

    def update(self, t: np.ndarray, cls: int, normal: np.ndarray, albedo: np.ndarray) -> None:
        closer = t < self.t
        if not closer.any():
            return
        self.t[closer] = t[closer]
        self.cls[closer] = cls
        self.normal[closer] = normal[closer] if normal.ndim == 2 else normal
        self.albedo[closer] = albedo[closer] if albedo.ndim == 2 else albedo


def _hsv(rng: np.random.Generator, spec: tuple[float, ...]) -> np.ndarray:
    h = rng.uniform(spec[0], spec[1]) % 1.0
    s, v = rng.uniform(spec[2], spec[3]), rng.uniform(spec[4], spec[5])
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _object_colour(rng: np.random.Generator, cls: int, hard: bool) -> np.ndarray:
    return _hsv(rng, (0.0, 1.0, 0.1, 0.9, 0.3, 0.95) if hard else _PALETTE[cls])


@dataclass
class _View:
    """A scene's room and camera: rays `d` (world frame) leave `eye`; hit = eye + t * d."""

    width: float
    height: float
    far: float
    eye: np.ndarray
    cam_to_world: np.ndarray
    d: np.ndarray


def _view(rng: np.random.Generator, rays_cam: np.ndarray, roll: bool) -> _View:
    """Draw the room's size and the camera: camera (x right, y down, z fwd) -> world (x right,
    y up, z fwd), then pitch down and yaw (and a small roll when `roll`)."""
    width, height, far = rng.uniform(4.0, 7.0), rng.uniform(2.5, 3.2), rng.uniform(6.0, 9.0)
    eye = np.array([rng.uniform(-0.25, 0.25) * width, rng.uniform(1.1, 1.7), 0.0])
    flip = np.diag([1.0, -1.0, 1.0])
    tilt = _rot_z(rng.uniform(-0.15, 0.15)) if roll else np.eye(3)
    cam_to_world = _rot_y(rng.uniform(-0.3, 0.3)) @ _rot_x(rng.uniform(0.1, 0.45)) @ flip @ tilt
    return _View(width, height, far, eye, cam_to_world, rays_cam @ cam_to_world.T)


def _room_hits(v: _View) -> _Hits:
    """The room: the camera is inside an axis-aligned box; the exit face is what each ray sees
    (distance, geometric class and normal; albedo left black)."""
    d = v.d
    n = len(d)
    d_safe = np.where(np.abs(d) < 1e-12, 1e-12, d)
    lo = np.array([-v.width / 2, 0.0, _NEAR])
    hi = np.array([v.width / 2, v.height, v.far])
    t_exit_axis = np.maximum((lo - v.eye) / d_safe, (hi - v.eye) / d_safe)  # (R, 3)
    axis = np.argmin(t_exit_axis, axis=1)
    positive = d[np.arange(n), axis] > 0
    hits = _Hits(n)
    hits.t[:] = t_exit_axis[np.arange(n), axis]
    hits.normal[np.arange(n), axis] = np.where(positive, -1.0, 1.0)
    hits.cls[:] = np.where(axis == 1, np.where(positive, CEILING, FLOOR), WALL)
    return hits


def _paint_room(rng: np.random.Generator, v: _View, hits: _Hits, hard: bool) -> None:
    """Floor planks, wall waves and a plain ceiling, each in its own colour."""
    hit_room = v.eye + hits.t[:, None] * v.d
    floor_col = _hsv(rng, _PALETTE[FLOOR])
    wall_col = _hsv(rng, _PALETTE[WALL])
    ceil_col = _hsv(rng, _PALETTE[CEILING])
    plank = rng.uniform(2.0, 5.0)
    floor_tex = 0.8 + 0.2 * (np.floor(hit_room[:, 0] * plank) % 2) * (
        0.6 + 0.4 * np.cos(hit_room[:, 2] * 9.0)
    )
    wall_tex = 0.9 + 0.1 * np.sin(hit_room[:, 1] * rng.uniform(3.0, 12.0)) * rng.uniform(
        0.3, 1.0 if hard else 0.6
    )
    hits.albedo[:] = np.where(
        (hits.cls == FLOOR)[:, None],
        floor_col * floor_tex[:, None],
        np.where((hits.cls == WALL)[:, None], wall_col * wall_tex[:, None], ceil_col),
    )


def render_scene(rng: np.random.Generator, rays_cam: np.ndarray, r: int, difficulty: str) -> dict | None:
    """One scene; None when no object is visible (the caller draws another)."""
    hard = difficulty == "hard"
    v = _view(rng, rays_cam, roll=hard)
    hits = _room_hits(v)
    _paint_room(rng, v, hits, hard)
    # objects stand on the floor in front of the camera (spheres may float)
    n_objects = int(rng.integers(5, 10) if hard else rng.integers(3, 8))
    for _ in range(n_objects):
        cls = int(rng.choice([CABINET, TABLE, SPHERE, CYLINDER]))
        x = rng.uniform(-0.4, 0.4) * v.width
        z = rng.uniform(1.3, min(v.far - 0.6, 5.0))
        colour = _object_colour(rng, cls, hard)
        t, normal = _object_surface(rng, cls, v.eye, v.d, x, z, v.height)
        y_hit = v.eye[1] + np.where(np.isfinite(t), t, 0.0) * v.d[:, 1]
        stripes = 0.85 + 0.15 * np.sign(np.sin(y_hit * rng.uniform(4.0, 14.0)))
        hits.update(t, cls, normal, colour[None, :] * stripes[:, None])

    counts = np.bincount(hits.cls, minlength=len(CLASSES))[CABINET:]
    if counts.sum() == 0:
        return None
    dist, lambert = _point_light(rng, v.eye, v.d, hits, v.width, v.height, v.far)
    power = rng.uniform(0.5, 1.0) if hard else rng.uniform(0.8, 1.1)
    ambient = rng.uniform(0.15, 0.35) if hard else rng.uniform(0.3, 0.45)
    shade = ambient + power * lambert * np.minimum(1.0, 9.0 / (dist[:, 0] ** 2 + 1.0))
    tint = 1.0 + rng.uniform(-0.1, 0.1, 3) * (2.0 if hard else 1.0)
    rgb = hits.albedo * shade[:, None] * tint
    rgb = rgb + rng.normal(0.0, 0.05 if hard else 0.02, rgb.shape)
    return _scene_record(hits, rgb, v.cam_to_world, counts, r)


# stripe orientation (radians) per object class in `compete`: the class is this orientation
COMPETE_STRIPE_ANGLES = {CABINET: 0.0, TABLE: math.pi / 4, SPHERE: math.pi / 2, CYLINDER: 3 * math.pi / 4}
COMPETE_STRIPE_CONTRAST = 0.35  # albedo multiplied by 1 +- this
COMPETE_STRIPE_PERIOD_PX = (3.5, 4.5)


def render_compete_scene(rng: np.random.Generator, rays_cam: np.ndarray, r: int) -> dict | None:
    """One `compete` scene; None when no object is visible.

    Geometry, depth and normals are rendered as in `normal`, but an object's shape and its
    class are drawn independently (a sphere is as likely to be a "cabinet" as anything else),
    and colour is class-free. The class is written only in a texture: square-wave luminance
    stripes in image space whose orientation is the class (0, 45, 90 or 135 degrees, period
    3.5-4.5 px, random phase). The room (floor, walls, ceiling) is untextured and keeps its
    geometric classes.

    Why this creates competition for shared weights: segmentation must detect a fine oriented
    texture and ignore shading, while depth and normals must read shading and occlusion (low
    frequency) and ignore the +-35% luminance stripes that sit on top of it, the very signal the
    segmentation head needs. Neither task's cue helps the other (object classes are not a
    function of the geometry), so a narrow shared encoder must split its few channels between
    them; a network trained for one task alone can spend all of them on its own cue.
    Expected: Joint below Single on segmentation and depth/normals at a fixed short schedule,
    and auxiliary heads at intermediate layers (which see the stripes at higher resolution than
    the deepest map) helping the shared layers keep both feature sets.
    """
    v = _view(rng, rays_cam, roll=False)
    hits = _room_hits(v)
    for c in (FLOOR, WALL, CEILING):  # untextured greys
        hits.albedo[hits.cls == c] = rng.uniform(0.45, 0.85)
    n_rays = len(v.d)
    v_px, u_px = np.divmod(np.arange(n_rays), r)
    n_objects = int(rng.integers(3, 8))
    for _ in range(n_objects):
        shape = int(rng.choice([CABINET, TABLE, SPHERE, CYLINDER]))
        cls = int(rng.choice([CABINET, TABLE, SPHERE, CYLINDER]))  # independent of the shape
        x = rng.uniform(-0.4, 0.4) * v.width
        z = rng.uniform(1.3, min(v.far - 0.6, 5.0))
        t, normal = _object_surface(rng, shape, v.eye, v.d, x, z, v.height)
        colour = _hsv(rng, (0.0, 1.0, 0.0, 0.35, 0.5, 0.9))  # class-free, muted
        angle = COMPETE_STRIPE_ANGLES[cls]
        period = rng.uniform(*COMPETE_STRIPE_PERIOD_PX)
        phase = rng.uniform(0.0, 2 * math.pi)
        wave = np.sin(2 * math.pi * (u_px * math.cos(angle) + v_px * math.sin(angle)) / period + phase)
        stripes = 1.0 + COMPETE_STRIPE_CONTRAST * np.where(wave >= 0, 1.0, -1.0)
        hits.update(t, cls, normal, colour[None, :] * stripes[:, None])

    counts = np.bincount(hits.cls, minlength=len(CLASSES))[CABINET:]
    if counts.sum() == 0:
        return None
    dist, lambert = _point_light(rng, v.eye, v.d, hits, v.width, v.height, v.far)
    shade = rng.uniform(0.3, 0.45) + rng.uniform(0.8, 1.1) * lambert * np.minimum(
        1.0, 9.0 / (dist[:, 0] ** 2 + 1.0)
    )
    rgb = hits.albedo * shade[:, None] + rng.normal(0.0, 0.02, (n_rays, 3))
    return _scene_record(hits, rgb, v.cam_to_world, counts, r)


def _scene_record(hits, rgb: np.ndarray, cam_to_world: np.ndarray, counts: np.ndarray, r: int) -> dict:
    """One rendered scene as stored: 8-bit image, labels, depth, camera-frame normals."""
    normal_cam = hits.normal @ cam_to_world  # world -> camera: n_c = M^T n_w
    return {
        "image": (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).reshape(r, r, 3),
        "label": hits.cls.astype(np.int8).reshape(r, r),
        "depth": hits.t.astype(np.float32).reshape(r, r),
        "normal": normal_cam.astype(np.float32).reshape(r, r, 3),
        "classification": int(np.argmax(counts)),
    }


def _point_light(rng: np.random.Generator, eye, d, hits, width: float, height: float, far: float):
    """A point light under the ceiling (drawn from `rng`): distance to it and Lambert term per pixel."""
    point = eye + hits.t[:, None] * d
    light = np.array([rng.uniform(-0.4, 0.4) * width, height - 0.2, rng.uniform(1.0, far - 1.0)])
    to_light = light - point
    dist = np.linalg.norm(to_light, axis=1, keepdims=True)
    lambert = np.clip(np.sum(hits.normal * to_light / dist, axis=1), 0.0, None)
    return dist, lambert


def _object_surface(rng: np.random.Generator, shape: int, eye, d, x: float, z: float, height: float):
    """Ray hits (t, normal) of one object of `shape` standing at (x, z); draws its size from `rng`."""
    if shape in (CABINET, TABLE):
        if shape == CABINET:
            half = np.array([rng.uniform(0.25, 0.5), rng.uniform(0.5, 1.0), rng.uniform(0.25, 0.4)])
        else:
            half = np.array([rng.uniform(0.45, 0.9), rng.uniform(0.25, 0.45), rng.uniform(0.35, 0.6)])
        return _box(eye, d, np.array([x, half[1], z]), half, rng.uniform(0, math.pi))
    if shape == SPHERE:
        radius = rng.uniform(0.35, 0.7)
        y = radius if rng.random() < 0.6 else rng.uniform(radius + 0.3, height - radius - 0.2)
        return _sphere(eye, d, np.array([x, y, z]), radius)
    return _cylinder(eye, d, x, z, rng.uniform(0.25, 0.45), rng.uniform(0.8, 2.2))


def _box(eye, d, centre, half, yaw):
    rot = _rot_y(yaw)  # local -> world
    o = (eye - centre) @ rot  # world -> local: R^T v, written as v @ R
    dl = d @ rot
    dl = np.where(np.abs(dl) < 1e-12, 1e-12, dl)
    t1, t2 = (-half - o) / dl, (half - o) / dl
    t_near_axis = np.minimum(t1, t2)
    axis = np.argmax(t_near_axis, axis=1)
    t_near = t_near_axis[np.arange(len(d)), axis]
    t_far = np.min(np.maximum(t1, t2), axis=1)
    hit = (t_near <= t_far) & (t_near > 1e-6)
    local_n = np.zeros_like(dl)
    local_n[np.arange(len(d)), axis] = -np.sign(dl[np.arange(len(d)), axis])
    return np.where(hit, t_near, np.inf), local_n @ rot.T


def _sphere(eye, d, centre, radius):
    oc = eye - centre
    a = np.einsum("ij,ij->i", d, d)
    b = d @ oc
    disc = b * b - a * (oc @ oc - radius * radius)
    t = (-b - np.sqrt(np.clip(disc, 0.0, None))) / a
    hit = (disc >= 0) & (t > 1e-6)
    t = np.where(hit, t, np.inf)
    normal = (eye + np.where(hit, t, 0.0)[:, None] * d - centre) / radius
    return t, normal


def _cylinder(eye, d, x, z, radius, height):
    ox, oz = eye[0] - x, eye[2] - z
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    a = np.where(a < 1e-12, 1e-12, a)
    b = d[:, 0] * ox + d[:, 2] * oz
    disc = b * b - a * (ox * ox + oz * oz - radius * radius)
    t_side = (-b - np.sqrt(np.clip(disc, 0.0, None))) / a
    y_side = eye[1] + t_side * d[:, 1]
    side = (disc >= 0) & (t_side > 1e-6) & (y_side >= 0.0) & (y_side <= height)
    dy = np.where(np.abs(d[:, 1]) < 1e-12, 1e-12, d[:, 1])
    t_cap = (height - eye[1]) / dy
    cx_, cz_ = ox + t_cap * d[:, 0], oz + t_cap * d[:, 2]
    cap = (t_cap > 1e-6) & (cx_ * cx_ + cz_ * cz_ <= radius * radius)
    t_side = np.where(side, t_side, np.inf)
    t_cap = np.where(cap, t_cap, np.inf)
    use_cap = t_cap < t_side
    t = np.minimum(t_side, t_cap)
    px = ox + np.where(np.isfinite(t_side), t_side, 0.0) * d[:, 0]
    pz = oz + np.where(np.isfinite(t_side), t_side, 0.0) * d[:, 2]
    side_n = np.stack([px / radius, np.zeros_like(px), pz / radius], axis=1)
    normal = np.where(use_cap[:, None], np.array([0.0, 1.0, 0.0]), side_n)
    return t, normal
