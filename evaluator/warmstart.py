"""The warm start of `model.pretrained: auto`: main-network weights (shared encoder and
decoders) trained once with the Joint objective on meta-train, cached on disk, loaded by every
candidate before its own training. It stands in for the paper's ImageNet initialisation.

One file per key, `<cache>/<key>.pt`; the key hashes everything that determines the weights
(data config, tasks, main-network fields of the model config, `model.pretrain_steps`, the
training settings the pretraining uses, the seed and the device type). Cache directory:
`model.pretrain_cache`, else `$AUXNAS_CACHE_DIR/warmstart`, else `~/.cache/auxnas/warmstart`.

Parallel workers: the builder holds `fcntl.flock` on `<key>.lock`, so a second process waits
and then loads what the first wrote. The file is written to a temporary name in the same
directory and `os.replace`d into place, so a build killed midway leaves only a temporary file,
which the loader never reads (the next builder removes it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from auxnas.evaluator import defaults

if TYPE_CHECKING:
    from auxnas.evaluator.config import EvalConfig

FORMAT = 1
AUTO = "auto"
# training settings the pretraining reads (the rest of `train` only affects the candidates)
_TRAIN_FIELDS = ("batch_size", "lr", "weight_decay", "optimizer", "weighting", "schedule", "warmup_steps")
# model fields that only shape the auxiliary modules or name the cache
_NOT_MAIN_NETWORK = {"pretrained", "pretrain_cache", "num_aux_inputs", "aux_channels"}


def cache_dir(config: EvalConfig) -> Path:
    if config.model.pretrain_cache:
        return Path(config.model.pretrain_cache).expanduser()
    return defaults.cache_dir("warmstart")


def key_payload(config: EvalConfig, device_type: str) -> dict[str, Any]:
    train = {f: getattr(config.train, f) for f in _TRAIN_FIELDS}
    if device_type == "cuda":
        train["amp"] = config.train.amp
    return {
        "format": FORMAT,
        "seed": config.seed,
        "device": device_type,
        "tasks": list(config.tasks),
        "data": config.data.model_dump(mode="json"),
        "model": config.model.model_dump(mode="json", exclude=_NOT_MAIN_NETWORK),
        "train": train,
    }


def cache_key(config: EvalConfig, device_type: str) -> str:
    text = json.dumps(key_payload(config, device_type), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path(config: EvalConfig, device_type: str) -> Path:
    return cache_dir(config) / f"{cache_key(config, device_type)}.pt"


def load(path: Path, key: str) -> dict[str, torch.Tensor] | None:
    """The cached state_dict, or None when the file is missing, unreadable or another key's."""
    if not path.is_file():
        return None
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if not isinstance(doc, dict) or doc.get("key") != key or not isinstance(doc.get("state"), dict):
        return None
    return doc["state"]


def load_or_build(
    config: EvalConfig, device_type: str, build: Callable[[], dict[str, torch.Tensor]]
) -> tuple[dict[str, torch.Tensor], bool]:
    """(state_dict, built): the cached weights for this config, built by `build()` under the
    lock when no valid file exists yet."""
    key = cache_key(config, device_type)
    directory = cache_dir(config)
    path = directory / f"{key}.pt"
    state = load(path, key)
    if state is not None:
        return state, False
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"model.pretrain_cache: cannot create {directory} ({e.strerror or e})") from None
    with open(directory / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel if this process dies
        try:
            state = load(path, key)  # another process may have built it while we waited
            if state is not None:
                return state, False
            for leftover in directory.glob(f"{key}.pt.*.tmp"):  # from a killed build
                leftover.unlink(missing_ok=True)
            state = {k: v.detach().to("cpu").clone() for k, v in build().items()}
            _write_atomically(path, {"key": key, "payload": key_payload(config, device_type), "state": state})
            return state, True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomically(path: Path, doc: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
