"""Evaluation config: the data, model, training and resource sections of a preset.

The same pydantic models validate YAML presets, `auxnas evaluate` and the REST API's request
bodies (through `controller.config.SearchConfig`, which extends `EvalConfig`).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from auxnas.evaluator.defaults import DEFAULT_TASKS
from auxnas.search_space import SearchSpace


class ConfigError(ValueError):
    """A user mistake in a config: `str(err)` is one line naming the field."""


# Bounds shared by every section. Integers stay within a 32-bit signed INTEGER column (SQLite and
# PostgreSQL alike), floats are finite, and numbers and booleans are strict: a string is not a
# number and `true` is not 1 (YAML presets and JSON bodies give real ints, floats and booleans).
INT32_MAX = 2**31 - 1
MAX_TASKS = 16
MAX_TASK_NAME = 64
MAX_PATH = 4096

# tasks of the built-in datasets (evaluator/data/synthetic.py, nyuv2.py; a test holds them equal),
# named here so that a submitted config is checked without importing torch
BUILTIN_DATASET_TASKS: dict[str, tuple[str, ...]] = {
    "synthetic": ("segmentation", "depth", "normal", "classification"),
    "nyuv2": ("segmentation", "depth", "normal"),
}

TaskName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TASK_NAME)]


def integral(value: Any, annotation: Any) -> Any:
    """`value` with a float that has no fraction (104.0) made an int where `annotation` wants an
    integer: JSON Schema's "integer" includes such numbers, so the API's schema promises them."""
    if get_origin(annotation) is Annotated:
        return integral(value, get_args(annotation)[0])
    args = get_args(annotation)
    if get_origin(annotation) in (Union, UnionType) and len([a for a in args if a is not type(None)]) == 1:
        return integral(value, next(a for a in args if a is not type(None)))
    wants_int = annotation is int or (get_origin(annotation) is Literal and all(type(a) is int for a in args))
    if wants_int and type(value) is float and value.is_integer():
        return int(value)
    if get_origin(annotation) is list and args and isinstance(value, list):
        return [integral(v, args[0]) for v in value]
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _integral_floats(cls, v: Any, info: ValidationInfo) -> Any:
        return integral(v, cls.model_fields[info.field_name].annotation)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, v: Any) -> Any:
        # PostgreSQL cannot store NUL in text or JSON
        items = v if isinstance(v, list) else [v]
        if any(isinstance(x, str) and "\x00" in x for x in items):
            raise ValueError("must not contain NUL characters")
        return v


class DataConfig(_Section):
    name: str = Field(
        "synthetic",
        max_length=200,
        description="synthetic | nyuv2 | a registered dataset plugin | python:package.module:callable "
        "(at most 200 characters)",
    )
    root: str | None = Field(
        None,
        max_length=MAX_PATH,
        description="dataset directory (nyuv2) or cache directory (synthetic); at most 4096 characters",
    )
    num_images: int = Field(
        600, ge=8, le=1_000_000, description="synthetic: training images (the test split is extra); 8..1e6"
    )
    num_test_images: int = Field(200, ge=4, le=1_000_000, description="synthetic: test images; 4..1e6")
    resolution: int = Field(64, ge=16, le=1024, description="synthetic: image side in pixels; 16..1024")
    crop_size: (
        Annotated[list[Annotated[int, Field(ge=8, le=4096)]], Field(min_length=2, max_length=2)] | None
    ) = Field(
        None, description="[H, W] random training crop (any dataset), each 8..4096; scoring uses whole images"
    )
    meta_val_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of training images; (0, 1)")
    split_seed: int = Field(0, ge=0, le=INT32_MAX, description="meta-train/meta-val split seed; 0..2^31-1")
    seed: int = Field(
        0,
        ge=0,
        le=INT32_MAX,
        description="synthetic: generator seed (the same images for every trial seed); 0..2^31-1",
    )
    difficulty: Literal["normal", "hard", "compete"] = Field(
        "normal",
        description="synthetic: 'hard' has more objects, class-free colours, darker noisier images; "
        "'compete': classes written only in a stripe texture that depth must ignore",
    )

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        from auxnas.evaluator import plugins

        if (
            v in ("synthetic", "nyuv2")
            or plugins.is_python_spec(v)
            or v in plugins.registered(plugins.DATASETS)
        ):
            return v
        extra = "".join(f", {n!r}" for n in plugins.names(plugins.DATASETS))
        raise ValueError(f"must be 'synthetic', 'nyuv2'{extra} or 'python:package.module:callable'")


def torchvision_problem() -> str | None:
    """Why torchvision cannot be used here (None when it imports): `encoder: resnet50` needs it,
    and a torchvision built for another torch fails on import."""
    try:
        import torchvision.models  # noqa: F401
    except Exception as e:  # noqa: BLE001 - ImportError, or a build for another torch
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no message'}"
    return None


class ModelConfig(_Section):
    """The main network. `decoder` is no field: every task has the one head of
    evaluator/networks/decoders.py. A config that still says `decoder: baseline` (that head's
    old name) is accepted and the key dropped; any other value is refused."""

    encoder: Literal["tiny", "deep-plain", "mobilenetv2", "resnet50"] = "tiny"
    width_mult: float = Field(1.0, gt=0.0, le=4.0, description="encoder channel multiplier; (0, 4]")
    pretrained: str | None = Field(
        None,
        max_length=MAX_PATH,
        description="local path of encoder weights (state_dict), or 'auto': the cached warm start; "
        "at most 4096 characters",
    )
    output_stride: Literal[4, 8, 16, 32] = Field(
        8, description="encoder stride of the deepest feature map; later stages dilate instead"
    )
    num_aux_inputs: int = Field(
        3, ge=1, le=8, description="P: encoder feature maps the aux modules read; 1..8"
    )
    aux_channels: int = Field(64, ge=4, le=1024, description="C: channels inside the aux modules; 4..1024")
    # warm start (`pretrained: auto`), see evaluator.warmstart
    pretrain_steps: int = Field(
        200,
        ge=1,
        le=1_000_000,
        description="pretrained 'auto': Joint training steps of the cached warm start",
    )
    pretrain_cache: str | None = Field(
        None,
        min_length=1,
        description="pretrained 'auto': cache directory (default $AUXNAS_CACHE_DIR/warmstart, "
        "else ~/.cache/auxnas/warmstart)",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_decoder_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "decoder" in data:
            if data["decoder"] != "baseline":
                raise ValueError(
                    f"decoder: {data['decoder']!r} is not a decoder; there is one task head, and the key "
                    "may be left out ('baseline', its old name, is still accepted)"
                )
            data = {k: v for k, v in data.items() if k != "decoder"}
        return data

    @field_validator("encoder")
    @classmethod
    def _resnet50_needs_torchvision(cls, v: str) -> str:
        if v == "resnet50" and (problem := torchvision_problem()) is not None:
            raise ValueError(
                f"resnet50 needs torchvision, which does not import here ({problem}); install the "
                "torchvision release built for your torch, or use tiny, deep-plain or mobilenetv2"
            )
        return v


class TrainConfig(_Section):
    steps: int = Field(300, ge=1, le=1_000_000, description="training steps per candidate; 1..1e6")
    batch_size: int = Field(16, ge=1, le=4096, description="1..4096")
    lr: float = Field(0.01, gt=0.0, le=10.0, description="initial learning rate; (0, 10]")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0, description="[0, 1]")
    optimizer: Literal["sgd", "adam"] = "sgd"
    aux_weight: float = Field(
        1.0, ge=0.0, le=1000.0, description="weight of the auxiliary losses (paper eq. 3); [0, 1000]"
    )
    weighting: Literal["equal", "uncertainty", "dwa"] = "equal"
    amp: bool = Field(True, description="mixed precision when on a GPU")
    early_stop_fraction: float = Field(
        0.5, gt=0.0, lt=1.0, description="share of steps before the check; (0, 1)"
    )
    eval_batch_size: int = Field(64, ge=1, le=4096, description="1..4096")
    ema_decay: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="score an exponential moving average of the main weights (0 = off); [0, 1)",
    )
    bn_recalibration: int = Field(
        0,
        ge=0,
        le=10_000,
        description="training batches that re-estimate BatchNorm statistics before scoring (0 = off); 0..1e4",
    )
    # noise levers (README "Noise levers")
    reward_seeds: int = Field(
        1, ge=1, le=64, description="train under seeds seed..seed+k-1; reward from the seed-averaged metrics"
    )
    schedule: Literal["poly", "constant", "cosine"] = Field(
        "poly", description="learning-rate decay after the warm-up: poly (1 - t)^0.9, constant or cosine"
    )
    warmup_steps: int = Field(0, ge=0, le=1_000_000, description="linear learning-rate warm-up from 0")
    reward_evals: int = Field(
        1, ge=1, le=100, description="meta-val evaluations averaged, evenly spaced over the last quarter"
    )

    @field_validator("reward_evals")
    @classmethod
    def _evals_fit_in_steps(cls, v: int, info: ValidationInfo) -> int:
        steps = info.data.get("steps")
        if isinstance(steps, int) and v > steps:
            raise ValueError(f"must be at most train.steps ({steps})")
        return v

    @field_validator("warmup_steps")
    @classmethod
    def _warmup_below_steps(cls, v: int, info: ValidationInfo) -> int:
        steps = info.data.get("steps")
        if isinstance(steps, int) and v >= steps:
            raise ValueError(f"must be below train.steps ({steps})")
        return v


class ResourcesConfig(_Section):
    num_gpus: float = Field(0.0, ge=0.0, le=1024.0, description="per trial; fractional allowed; [0, 1024]")
    num_cpus: float = Field(1.0, gt=0.0, le=1024.0, description="per trial; (0, 1024]")


class EvalConfig(_Section):
    seed: int = Field(0, ge=0, le=INT32_MAX, description="training seed; 0..2^31-1")
    tasks: list[TaskName] = Field(
        default_factory=lambda: list(DEFAULT_TASKS),
        min_length=1,
        max_length=MAX_TASKS,
        description="task names, 1..16 of them, each 1..64 characters; the dataset must offer them",
        json_schema_extra={"uniqueItems": True},  # _unique_tasks
    )
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

    def search_space(self) -> SearchSpace:
        """The space of genotypes for these tasks and `model.num_aux_inputs` (SpaceError if none)."""
        return SearchSpace(num_inputs=self.model.num_aux_inputs, tasks=tuple(self.tasks))


def unoffered_task(config: EvalConfig) -> tuple[int, str] | None:
    """(index, reason) of the first task that a built-in dataset does not offer; None when all are
    offered or the dataset is a plugin (its tasks are known only once it is loaded)."""
    offered = BUILTIN_DATASET_TASKS.get(config.data.name)
    if offered is None:
        return None
    for i, task in enumerate(config.tasks):
        if task not in offered:
            return i, f"{task!r} is not a task of dataset {config.data.name!r} (it has {', '.join(offered)})"
    return None


class _YamlLoader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-4` (no dot) as a string; read it as the float YAML 1.2 and JSON mean."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


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
        doc = yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
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
    """A preset from a file; a task its built-in dataset does not offer is refused here too, so
    the CLI stores nothing for it (the API checks the same at submission)."""
    config = parse_config(load_yaml(path), model, str(path))
    unoffered = unoffered_task(config)
    if unoffered is not None:
        index, reason = unoffered
        raise ConfigError(f"{path}: tasks.{index}: {reason}")
    return config
