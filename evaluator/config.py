"""Evaluation config: the data, model, training and resource sections of a preset.

The same pydantic models validate YAML presets, `auxnas evaluate` and the REST API's request
bodies (through `controller.config.SearchConfig`, which extends `EvalConfig`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """A user mistake in a config: `str(err)` is one line naming the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Section):
    name: str = Field("synthetic", description="synthetic | nyuv2 | python:package.module:callable")
    root: str | None = Field(None, description="dataset directory (nyuv2) or cache directory (synthetic)")
    num_images: int = Field(600, ge=8, description="synthetic: training images (the test split is extra)")
    num_test_images: int = Field(200, ge=4, description="synthetic: test images")
    resolution: int = Field(64, ge=16, le=1024, description="synthetic: image side in pixels")
    crop_size: list[int] | None = Field(
        None, description="[H, W] random training crop (any dataset); scoring uses whole images"
    )
    meta_val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = 0
    seed: int = Field(0, description="synthetic: generator seed (the same images for every trial seed)")
    difficulty: Literal["normal", "hard"] = Field(
        "normal", description="synthetic: 'hard' has more objects, class-free colours, darker noisier images"
    )

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        if v in ("synthetic", "nyuv2") or (v.startswith("python:") and v.count(":") == 2):
            return v
        raise ValueError("must be 'synthetic', 'nyuv2' or 'python:package.module:callable'")

    @field_validator("crop_size")
    @classmethod
    def _crop_pair(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) != 2 or min(v) < 8):
            raise ValueError("must be [height, width], each at least 8")
        return v


class ModelConfig(_Section):
    encoder: Literal["tiny", "mobilenetv2", "resnet50"] = "tiny"
    width_mult: float = Field(1.0, gt=0.0, le=4.0)
    pretrained: str | None = Field(None, description="local path of encoder weights (state_dict)")
    decoder: Literal["baseline"] = "baseline"
    output_stride: Literal[4, 8, 16, 32] = Field(
        8, description="encoder stride of the deepest feature map; later stages dilate instead"
    )
    num_aux_inputs: int = Field(3, ge=1, le=8, description="P: encoder feature maps the aux modules read")
    aux_channels: int = Field(64, ge=4, le=1024, description="C: channels inside the aux modules")


class TrainConfig(_Section):
    steps: int = Field(300, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(0.01, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    aux_weight: float = Field(1.0, ge=0.0, description="weight of the auxiliary losses (paper eq. 3)")
    weighting: Literal["equal", "uncertainty", "dwa"] = "equal"
    amp: bool = Field(True, description="mixed precision when on a GPU")
    early_stop_fraction: float = Field(0.5, gt=0.0, lt=1.0, description="share of steps before the check")
    eval_batch_size: int = Field(64, ge=1)
    ema_decay: float = Field(
        0.0, ge=0.0, lt=1.0, description="score an exponential moving average of the main weights (0 = off)"
    )
    bn_recalibration: int = Field(
        0, ge=0, description="training batches that re-estimate BatchNorm statistics before scoring (0 = off)"
    )


class ResourcesConfig(_Section):
    num_gpus: float = Field(0.0, ge=0.0, description="per trial; fractional allowed")
    num_cpus: float = Field(1.0, gt=0.0, description="per trial")


class EvalConfig(_Section):
    seed: int = 0
    tasks: list[str] = Field(default_factory=lambda: ["segmentation", "depth", "normal"], min_length=1)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("task names must be unique")
        return v


def describe_validation_error(err: ValidationError) -> str:
    """One line naming the first offending field, e.g. `train.steps: Input should be >= 1`."""
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"]) or "<root>"
    more = len(err.errors()) - 1
    suffix = f" (and {more} more)" if more else ""
    return f"{path}: {first['msg']}{suffix}"


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror or e})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: config must be a mapping of sections")
    return doc


def parse_config(doc: dict, model: type[BaseModel] = EvalConfig, source: str = "config"):
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe_validation_error(e)}") from None


def load_config(path: str | Path, model: type[BaseModel] = EvalConfig):
    return parse_config(load_yaml(path), model, str(path))
