"""One evaluation: train a candidate on meta-train, score the main network on meta-val.

    result = evaluate(config, genotype)                  # genotype=None: the Joint baseline
    result = evaluate(config, genotype, early_stop_below=0.4)

Training objective (paper eq. 3): `weighting(main losses) + aux_weight * sum(aux losses)`, SGD
(momentum 0.9) or Adam. Learning rate (`learning_rate`): a linear warm-up over
`train.warmup_steps`, then `train.schedule` over the remaining steps: `poly` (the paper's
`(1 - t)^0.9`, the default), `cosine` or `constant`.
Reward: geometric mean over tasks of each task's score metric (in [0, 1]) on meta-val, from
the MAIN network only; the auxiliary modules are dropped before scoring.

Noise levers (README "Noise levers"):
- `train.reward_seeds: k`: the candidate is trained k times, under seeds `seed .. seed+k-1`
  (common random numbers per seed); `metrics` are the seed means and the reward is their
  geometric mean; `per_seed` holds each seed's metrics and reward. Early stop checks the first
  seed only: a first seed below the threshold ends the trial before the others run.
- `train.reward_evals: m`: each seed is scored at the m steps `steps - j*gap` (j = 0..m-1,
  `gap = max(1, steps // (4m))`: evenly spaced over the last quarter) and its metrics are the
  means over those evaluations.
- `model.pretrained: auto`: every seed starts from the cached warm start of that seed
  (`evaluator.warmstart`), built on first use from meta-train with the Joint objective.

Common random numbers: the main network is initialised from `config.seed` before the auxiliary
modules are built (they draw from a separate seed), and batches and augmentation come from
their own generator seeded by `config.seed`, so every candidate of a search starts from the
same weights and sees the same batches. On the CPU the same seed gives the same reward.

The auxiliary modules read the last `model.num_aux_inputs` feature maps of the encoder
(shallow to deep; see `evaluator.networks.encoders`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from auxnas.evaluator import warmstart
from auxnas.evaluator.augment import augment
from auxnas.evaluator.data import Dataset, Split, load_dataset, search_splits
from auxnas.evaluator.networks import build_network
from auxnas.evaluator.result import EvalResult
from auxnas.evaluator.seeds import trained_seeds
from auxnas.evaluator.tasks import Task, make_task
from auxnas.evaluator.weighting import make_weighting

if TYPE_CHECKING:
    from auxnas.evaluator.config import EvalConfig, TrainConfig
    from auxnas.search_space import Genotype

PHASES = ("search", "final")
_AUX_SEED_OFFSET = 7919  # auxiliary-module init draws from its own seed
_GPU_RESIDENT_BYTES = 2 << 30  # splits below this stay on the GPU for the worker's lifetime
_NAN_CHECK_EVERY_CUDA = 20  # host syncs are costly on a GPU; a NaN never recovers anyway
_PRETRAIN_BATCH_SEED_OFFSET = 104729  # the warm start sees another batch order than the candidates


class NaNLoss(RuntimeError):
    pass


def evaluate(
    config: EvalConfig, genotype: Genotype | None, *, early_stop_below: float | None = None
) -> EvalResult:
    """Train `genotype`'s auxiliary modules with the main network on meta-train and score the
    main network on meta-val. `genotype=None` is the Joint baseline (no auxiliary modules).

    When `early_stop_below` is given, the main network is scored on meta-val after
    `train.early_stop_fraction` of the steps; a reward below it ends the trial there, returning
    that partial reward with `early_stopped=True`.

    Raises ValueError (naming the config field) when the genotype's space does not match the
    config or the config cannot be built; a NaN loss or running out of GPU memory returns
    `EvalResult.failure("NaNLoss" | "OutOfMemory", ...)`.
    """
    return train_and_score(config, genotype, phase="search", early_stop_below=early_stop_below)


def train_and_score(
    config: EvalConfig,
    genotype: Genotype | None,
    *,
    phase: str = "search",
    early_stop_below: float | None = None,
    device: str | torch.device | None = None,
) -> EvalResult:
    """`phase="search"`: train on meta-train, score on meta-val (what `evaluate` does).
    `phase="final"`: train on the whole training split, score on the test split (the retrain).

    `device` overrides the choice made from `config.resources` (CUDA when `num_gpus > 0` and
    CUDA is available, else the CPU)."""
    if phase not in PHASES:
        raise ValueError(f"phase: must be one of {list(PHASES)}, got {phase!r}")
    check_genotype(config, genotype)
    check_levers(config)
    dev = pick_device(config, device)
    dataset = load_dataset(config.data, config.tasks)
    if phase == "search":
        train, score = search_splits(dataset, config.data)
    else:
        train, score = dataset.train, dataset.test
    threads = torch.get_num_threads()
    try:
        train = _resident(dataset, (phase, "train"), train, dev)
        score = _resident(dataset, (phase, "score"), score, dev)
        # the trial gets resources.num_cpus cores; more OpenMP threads than free cores thrash
        torch.set_num_threads(max(1, int(round(config.resources.num_cpus))))
        runs: list[EvalResult] = []
        for i, seed in enumerate(trained_seeds(config.seed, config.train.reward_seeds)):
            seed_config = config.model_copy(update={"seed": seed})
            result = _one_seed(
                seed_config, genotype, dataset, train, score, dev, early_stop_below if i == 0 else None
            )
            runs.append(result)
            if not result.ok or result.early_stopped:
                break
        return _combine(runs, dataset)
    except torch.cuda.OutOfMemoryError as e:
        return EvalResult.failure("OutOfMemory", " ".join(str(e).split())[:500], device=_device_name(dev))
    finally:
        torch.set_num_threads(threads)


def _one_seed(
    config: EvalConfig,
    genotype: Genotype | None,
    dataset: Dataset,
    train: Split,
    score: Split,
    dev: torch.device,
    early_stop_below: float | None,
) -> EvalResult:
    """One training and scoring under `config.seed` (from its warm start when `pretrained: auto`)."""
    warm: dict = {}
    init_state = None
    if config.model.pretrained == warmstart.AUTO:
        t0 = time.perf_counter()
        init_state, built = _warm_start(config, dataset, dev)
        if isinstance(init_state, EvalResult):
            return init_state
        warm = {"warm_start": "built" if built else "loaded", "warm_start_seconds": time.perf_counter() - t0}
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        result = _Trial(config, genotype, dataset, train, score, dev, init_state=init_state).run(
            early_stop_below
        )
    if result.per_seed:
        result.per_seed[0].update(warm)
    return result


def _warm_start(config: EvalConfig, dataset: Dataset, dev: torch.device):
    """(state_dict, built) of the cached warm start, or a failed EvalResult when its training
    diverged. Always pretrained on meta-train: the same weights serve searches and retrains."""
    failure: list[EvalResult] = []

    def build() -> dict:
        meta_train, meta_val = search_splits(dataset, config.data)
        meta_train = _resident(dataset, ("search", "train"), meta_train, dev)
        pre = config.model_copy(
            update={
                "model": config.model.model_copy(update={"pretrained": None}),
                "train": config.train.model_copy(
                    update={"steps": config.model.pretrain_steps, "ema_decay": 0.0, "reward_evals": 1}
                ),
            }
        )
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            trial = _Trial(
                pre,
                None,
                dataset,
                meta_train,
                meta_val,
                dev,
                batch_seed=config.seed + _PRETRAIN_BATCH_SEED_OFFSET,
            )
            outcome = trial.run(None, scoring=False)
        if outcome is not None:
            failure.append(outcome)
            raise _PretrainFailed
        return trial.model.state_dict()

    try:
        return warmstart.load_or_build(config, dev.type, build)
    except _PretrainFailed:
        bad = failure[0]
        bad.error["message"] = f"warm start (model.pretrain_steps): {bad.error['message']}"
        bad.steps = 0
        return bad, True


class _PretrainFailed(Exception):
    pass


def _mean_metrics(items: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {t: {m: sum(x[t][m] for x in items) / len(items) for m in items[0][t]} for t in items[0]}


def _combine(runs: list[EvalResult], dataset: Dataset) -> EvalResult:
    """One result from the seeds' results: seed-mean metrics, reward = their geometric mean."""
    per_seed = [entry for r in runs for entry in r.per_seed]
    last = runs[-1]
    if not last.ok:
        last.per_seed = per_seed
        return last
    metrics = _mean_metrics([r.metrics for r in runs])
    score_metric = {name: make_task(info).score_metric for name, info in dataset.tasks.items()}
    return EvalResult(
        ok=True,
        reward=geometric_mean([metrics[t][m] for t, m in score_metric.items()]),
        metrics=metrics,
        main_params=last.main_params,
        aux_params=last.aux_params,
        train_seconds=sum(r.train_seconds for r in runs),
        eval_seconds=sum(r.eval_seconds for r in runs),
        steps=sum(r.steps for r in runs),
        device=last.device,
        early_stopped=last.early_stopped,
        per_seed=per_seed,
    )


def check_levers(config: EvalConfig) -> None:
    pretrained = config.model.pretrained
    if pretrained and pretrained != warmstart.AUTO and not Path(pretrained).expanduser().is_file():
        raise ValueError(
            f"model.pretrained: {pretrained!r} is not a file (nor 'auto', the cached warm start)"
        )


def learning_rate(tc: TrainConfig, step: int, steps: int) -> float:
    """LR of training step `step` (1-based) of `steps`: linear warm-up over `tc.warmup_steps`
    (capped below `steps`), then `tc.schedule` decays from `tc.lr` over the remaining steps."""
    warm = min(tc.warmup_steps, steps - 1)
    if step <= warm:
        return tc.lr * step / (warm + 1)
    t = (step - 1 - warm) / (steps - warm)  # 0 at the first decayed step, < 1 at the last
    if tc.schedule == "constant":
        return tc.lr
    if tc.schedule == "cosine":
        return tc.lr * 0.5 * (1.0 + math.cos(math.pi * t))
    return tc.lr * (1.0 - t) ** 0.9


def reward_eval_steps(steps: int, evals: int) -> list[int]:
    """The training steps after which the main network is scored for the reward (ascending)."""
    gap = max(1, steps // (4 * evals))
    return sorted({max(1, steps - j * gap) for j in range(evals)})


def check_genotype(config: EvalConfig, genotype: Genotype | None) -> None:
    if genotype is None:
        return
    space = genotype.space
    if space.num_inputs != config.model.num_aux_inputs:
        raise ValueError(
            f"model.num_aux_inputs: the genotype reads {space.num_inputs} feature maps, "
            f"the config has num_aux_inputs={config.model.num_aux_inputs}"
        )
    if list(space.tasks) != list(config.tasks):
        raise ValueError(
            f"tasks: the genotype's tasks {list(space.tasks)} differ from the config's {config.tasks}"
        )


def pick_device(config: EvalConfig, device: str | torch.device | None = None) -> torch.device:
    if device is not None:
        return torch.device(device)
    if config.resources.num_gpus > 0 and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"cuda:{dev.index or 0} ({torch.cuda.get_device_name(dev)})"
    return "cpu"


def _resident(dataset: Dataset, key: tuple, split: Split, dev: torch.device) -> Split:
    """The split on `dev`: GPU copies of small splits are made once and kept with the dataset."""
    if dev.type == "cpu" or split.nbytes() > _GPU_RESIDENT_BYTES:
        return split
    cache_key = (*key, str(dev))
    if cache_key not in dataset.derived:
        dataset.derived[cache_key] = split.to(dev)
    return dataset.derived[cache_key]


class EMA:
    """Exponential moving average of a module's floating-point parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.state[k].lerp_(v.detach(), 1.0 - self.decay)
            else:
                self.state[k].copy_(v)


def geometric_mean(scores: list[float]) -> float:
    if any(s <= 0.0 for s in scores):
        return 0.0
    return math.exp(sum(math.log(min(s, 1.0)) for s in scores) / len(scores))


class _Trial:
    def __init__(
        self,
        config: EvalConfig,
        genotype: Genotype | None,
        dataset: Dataset,
        train: Split,
        score: Split,
        dev: torch.device,
        *,
        init_state: Mapping[str, torch.Tensor] | None = None,
        batch_seed: int | None = None,
    ) -> None:
        self.config = config
        self.train_split = train
        self.score_split = score
        self.dev = dev
        tc = config.train
        self.tasks: dict[str, Task] = {name: make_task(info) for name, info in dataset.tasks.items()}
        self.kinds = {name: t.kind for name, t in self.tasks.items()}

        torch.manual_seed(config.seed)
        model_cfg = config.model
        if model_cfg.pretrained == warmstart.AUTO:
            model_cfg = model_cfg.model_copy(update={"pretrained": None})
        self.model = build_network(model_cfg, self.tasks, dataset.in_channels)
        if init_state is not None:
            self.model.load_state_dict(init_state, strict=True)
        self.aux: nn.Module | None = None
        if genotype is not None:
            from auxnas.search_space.builder import AuxiliaryModules

            torch.manual_seed(config.seed + _AUX_SEED_OFFSET)
            p = config.model.num_aux_inputs
            self.aux = AuxiliaryModules(
                genotype,
                self.model.feature_channels[-p:],
                {name: t.out_channels for name, t in self.tasks.items()},
                config.model.aux_channels,
            )
        self.batch_size = min(tc.batch_size, len(train))
        self.steps_per_epoch = max(1, len(train) // self.batch_size)
        self.weighting = make_weighting(tc.weighting, list(self.tasks), self.steps_per_epoch)
        for module in self._modules():
            module.to(dev)

        self.optimizer = self._optimizer()
        self.use_amp = dev.type == "cuda" and tc.amp
        bf16 = self.use_amp and torch.cuda.is_bf16_supported()
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and not bf16)
        self.generator = torch.Generator().manual_seed(config.seed if batch_seed is None else batch_seed)
        self.ema = EMA(self.model, tc.ema_decay) if tc.ema_decay > 0 else None
        self.crop = tuple(config.data.crop_size) if config.data.crop_size else None

    def _modules(self) -> list[nn.Module]:
        return [m for m in (self.model, self.aux, self.weighting) if m is not None]

    def _optimizer(self) -> torch.optim.Optimizer:
        """Weight decay on the networks' parameters, none on the task weighting's."""
        tc = self.config.train
        decayed = [p for m in (self.model, self.aux) if m is not None for p in m.parameters()]
        groups = [{"params": decayed, "weight_decay": tc.weight_decay}]
        if list(self.weighting.parameters()):
            groups.append({"params": list(self.weighting.parameters()), "weight_decay": 0.0})
        if tc.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=tc.lr, momentum=0.9)
        return torch.optim.Adam(groups, lr=tc.lr)

    # --- training -------------------------------------------------------------------------
    def _batches(self):
        n = len(self.train_split)
        while True:
            order = torch.randperm(n, generator=self.generator)
            for i in range(self.steps_per_epoch):
                yield order[i * self.batch_size : (i + 1) * self.batch_size]

    def _fetch(self, index: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        split = self.train_split
        index = index.to(split.images.device)
        images = split.images[index]
        targets = {t: split.targets[t][index] for t in self.tasks}
        if images.device != self.dev:
            images = images.to(self.dev, non_blocking=True)
            targets = {t: v.to(self.dev, non_blocking=True) for t, v in targets.items()}
        return augment(images, targets, self.kinds, self.generator, self.crop)

    def _losses(self, images: torch.Tensor, targets: Mapping[str, torch.Tensor]):
        with torch.autocast(self.dev.type, dtype=self.amp_dtype, enabled=self.use_amp):
            preds, features = self.model(images)
            aux_preds = {}
            if self.aux is not None:
                p = self.config.model.num_aux_inputs
                aux_preds = self.aux(features[-p:], images.shape[-2:])
        main = {t: task.loss(preds[t], targets[t]) for t, task in self.tasks.items()}
        aux = {
            t: task.loss(task.from_dense(aux_preds[t]), targets[t])
            for t, task in self.tasks.items()
            if aux_preds
        }
        total = self.weighting.combine(main)
        if aux:
            total = total + self.config.train.aux_weight * sum(aux.values())
        return total, main

    def run(self, early_stop_below: float | None, *, scoring: bool = True) -> EvalResult | None:
        """Train and score; `scoring=False` (the warm start) only trains and returns None, or
        the failure."""
        tc = self.config.train
        steps = tc.steps
        check_at = (
            max(1, int(round(tc.early_stop_fraction * steps))) if early_stop_below is not None else None
        )
        eval_at = set(reward_eval_steps(steps, tc.reward_evals)) if scoring else set()
        evaluations: list[tuple[dict, float]] = []
        nan_every = _NAN_CHECK_EVERY_CUDA if self.dev.type == "cuda" else 1
        bad = torch.zeros((), dtype=torch.bool, device=self.dev)
        eval_seconds = 0.0
        start = time.perf_counter()
        for m in self._modules():
            m.train()
        batches = self._batches()
        for step in range(1, steps + 1):
            lr = learning_rate(tc, step, steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            images, targets = self._fetch(next(batches))
            total, main = self._losses(images, targets)
            bad |= ~torch.isfinite(total.detach())
            if (step % nan_every == 0 or step in (steps, check_at)) and bool(bad):
                message = f"the training loss became NaN or infinite by step {step} (lr {lr:.3g})"
                return self._failure("NaNLoss", message, step)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.weighting.end_step(main)
            if self.ema is not None:
                self.ema.update(self.model)
            if step == check_at and step < steps:
                t0 = time.perf_counter()
                metrics, reward = self.score()
                eval_seconds += time.perf_counter() - t0
                if reward < early_stop_below:
                    return self._result(
                        [(metrics, reward)], step, time.perf_counter() - start, eval_seconds, True
                    )
            if step in eval_at:
                if self.dev.type == "cuda":
                    torch.cuda.synchronize(self.dev)
                t0 = time.perf_counter()
                evaluations.append(self.score())
                eval_seconds += time.perf_counter() - t0
        if not scoring:
            return None
        return self._result(evaluations, steps, time.perf_counter() - start, eval_seconds, False)

    # --- scoring --------------------------------------------------------------------------
    def score(self) -> tuple[dict[str, dict[str, float]], float]:
        """Main-network metrics on the scoring split and their reward (the EMA weights when
        `train.ema_decay` is on; BatchNorm statistics re-estimated when `bn_recalibration` is)."""
        if self.ema is None:
            return self._score(self.model)
        live = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.ema.state, strict=True)
        try:
            return self._score(self.model)
        finally:
            self.model.load_state_dict(live)

    @torch.no_grad()
    def _recalibrate_bn(self, model: nn.Module, batches: int) -> None:
        """Cumulative BatchNorm statistics over `batches` fixed meta-train batches (precise BN):
        removes the noise of running averages dominated by the last few training batches."""
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms or batches <= 0:
            return
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        model.train()
        split = self.train_split
        bs = self.batch_size
        n = min(len(split), batches * bs)
        for i in range(0, n - bs + 1, bs):
            images = split.images[i : i + bs].to(self.dev, non_blocking=True)
            with torch.autocast(self.dev.type, dtype=self.amp_dtype, enabled=self.use_amp):
                model(images)
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum

    def _score(self, model: nn.Module) -> tuple[dict[str, dict[str, float]], float]:
        self._recalibrate_bn(model, self.config.train.bn_recalibration)
        model.eval()
        split = self.score_split
        accumulators = {t: task.metrics() for t, task in self.tasks.items()}
        bs = self.config.train.eval_batch_size
        with torch.inference_mode():
            for i in range(0, len(split), bs):
                images = split.images[i : i + bs].to(self.dev, non_blocking=True)
                with torch.autocast(self.dev.type, dtype=self.amp_dtype, enabled=self.use_amp):
                    preds, _ = model(images)
                for t, acc in accumulators.items():
                    acc.update(preds[t].float(), split.targets[t][i : i + bs].to(self.dev, non_blocking=True))
        model.train()
        metrics = {t: acc.compute() for t, acc in accumulators.items()}
        reward = geometric_mean([metrics[t][task.score_metric] for t, task in self.tasks.items()])
        return metrics, reward

    def _params(self) -> dict[str, int]:
        from auxnas.search_space.builder import count_parameters

        return {
            "main_params": count_parameters(self.model),
            "aux_params": count_parameters(self.aux) if self.aux is not None else 0,
        }

    def _result(self, evaluations, steps, seconds, eval_seconds, early) -> EvalResult:
        """This seed's result: metrics averaged over its evaluations, reward their geometric mean."""
        metrics = _mean_metrics([m for m, _ in evaluations])
        reward = geometric_mean([metrics[t][task.score_metric] for t, task in self.tasks.items()])
        train_seconds = seconds - eval_seconds
        record = {
            "seed": self.config.seed,
            "reward": reward,
            "metrics": metrics,
            "eval_rewards": [r for _, r in evaluations],
            "steps": steps,
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
            "early_stopped": early,
        }
        return EvalResult(
            ok=True,
            reward=reward,
            metrics=metrics,
            train_seconds=train_seconds,
            eval_seconds=eval_seconds,
            steps=steps,
            device=_device_name(self.dev),
            early_stopped=early,
            per_seed=[record],
            **self._params(),
        )

    def _failure(self, kind: str, message: str, steps: int) -> EvalResult:
        return EvalResult.failure(kind, message, steps=steps, device=_device_name(self.dev), **self._params())
