"""Benchmark of the evaluator. Prints every figure it measures.

    .venv/bin/python bench/evaluate.py                       # configs/synthetic-tiny.yaml
    .venv/bin/python bench/evaluate.py --config configs/synthetic-hard.yaml
    .venv/bin/python bench/evaluate.py --gpu                 # nyuv2-mobilenetv2 on NYUv2-shaped random data

1. Synthetic data generation: 1,000 images at 64x64 on one core (the issue asks < 30 s).
2. Seconds per candidate on the preset (median over the random genotypes below; the dataset
   is prepared once per process, as in a Ray worker, and not counted).
3. Does the reward tell architectures apart? std of the reward over N random genotypes (the
   preset's seed) divided by the std over S seeds of one genotype (target >= 2); reported for
   `basic` and for the first random genotype.
4. Joint baseline vs `basic`, S seeds each (mean and std).
With --gpu (needs CUDA): seconds per candidate of `nyuv2-mobilenetv2` on random tensors of
NYUv2 shape (288x384; written once in the preprocessed .npy layout), peak GPU memory, and the
GPU memory still allocated after the trial (should be back to the level before it).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def bench_generation() -> None:
    from auxnas.evaluator.data.synthetic import generate

    t = time.perf_counter()
    generate(1000, 64, seed=12345)
    print(
        f"synthetic generation: 1000 images 64x64 in {time.perf_counter() - t:.1f} s (one process, one core)"
    )


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def bench_preset(config_path: str, n_genotypes: int, n_seeds: int) -> None:
    import torch

    from auxnas.controller.config import load_search_config
    from auxnas.evaluator.data import load_dataset
    from auxnas.evaluator.evaluate import evaluate
    from auxnas.search_space import basic_genotype, sample_genotype

    cfg = load_search_config(config_path).eval_config()
    print(
        f"preset {config_path}: tasks {cfg.tasks}, {cfg.data.name} {cfg.data.resolution}px "
        f"{cfg.data.num_images} train images, encoder {cfg.model.encoder}, P={cfg.model.num_aux_inputs}, "
        f"C={cfg.model.aux_channels}, {cfg.train.steps} steps x batch {cfg.train.batch_size}, lr {cfg.train.lr}, "
        f"{cfg.resources.num_cpus:g} cpu thread(s) per trial"
    )
    t = time.perf_counter()
    load_dataset(cfg.data, cfg.tasks)
    print(
        f"dataset ready in {time.perf_counter() - t:.1f} s (generated or read from the disk cache; once per worker)"
    )
    print(f"before: {load_text()}; torch {torch.__version__}")
    space = cfg.search_space()

    cpu_seconds: list[float] = []

    def run(genotype, seed: int):
        c = cfg.model_copy(update={"seed": seed})
        t0, c0 = time.perf_counter(), time.process_time()
        r = evaluate(c, genotype)
        if not r.ok:
            raise SystemExit(f"evaluation failed: {r.error}")
        cpu_seconds.append(time.process_time() - c0)
        return r, time.perf_counter() - t0

    rng = random.Random(2024)
    genotypes = [sample_genotype(space, rng) for _ in range(n_genotypes)]
    rand = [run(g, cfg.seed) for g in genotypes]
    for g, (r, dt) in zip(genotypes, rand, strict=True):
        print(
            f"  random {g.canonical_hash()} seed {cfg.seed}: reward {r.reward:.4f} aux params {r.aux_params:,} {dt:.1f} s"
        )
    seconds = [dt for _, dt in rand]
    print(
        f"seconds per candidate: median {statistics.median(seconds):.1f} s over {len(seconds)} random genotypes "
        f"(min {min(seconds):.1f}, max {max(seconds):.1f}); CPU time of the process: median "
        f"{statistics.median(cpu_seconds):.1f} s (what one idle core would take, about)"
    )
    if n_seeds < 2:
        print(f"after: {load_text()}")
        return
    seeds = list(range(cfg.seed, cfg.seed + n_seeds))
    basic = [run(basic_genotype(space), s) for s in seeds]
    # the first random genotype again with the other seeds: a second "one genotype" for the seed std
    first = [rand[0]] + [run(genotypes[0], s) for s in seeds[1:]]
    joint = [run(None, s) for s in seeds]
    rr = [r.reward for r, _ in rand]
    br = [r.reward for r, _ in basic]
    fr = [r.reward for r, _ in first]
    jr = [r.reward for r, _ in joint]
    print(f"  basic seeds {seeds}: rewards {[round(x, 4) for x in br]}")
    print(f"  random {genotypes[0].canonical_hash()} seeds {seeds}: rewards {[round(x, 4) for x in fr]}")
    print(f"  joint seeds {seeds}: rewards {[round(x, 4) for x in jr]}")
    arch_sd = _std(rr)
    print(
        f"reward std across {n_genotypes} random genotypes: {arch_sd:.4f} (mean {statistics.mean(rr):.4f}, "
        f"range {min(rr):.4f}..{max(rr):.4f})"
    )
    for label, values in (("basic", br), (f"random {genotypes[0].canonical_hash()}", fr)):
        seed_sd = _std(values)
        ratio = arch_sd / seed_sd if seed_sd > 0 else float("inf")
        print(
            f"reward std across {n_seeds} seeds of {label}: {seed_sd:.4f} -> ratio {ratio:.2f} (target >= 2)"
        )
    print(
        f"Joint: {statistics.mean(jr):.4f} +- {_std(jr):.4f}   basic: {statistics.mean(br):.4f} +- {_std(br):.4f}  ({n_seeds} seeds)"
    )
    all_seconds = [dt for _, dt in rand + basic + first[1:] + joint]
    print(f"all {len(all_seconds)} candidates: median {statistics.median(all_seconds):.1f} s")
    print(f"after: {load_text()}")


def _write_nyuv2_shaped(root: Path, n_train: int, n_val: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for folder in ("image", "label", "depth", "normal"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            np.save(root / split / "image" / f"{i}.npy", rng.random((288, 384, 3), dtype=np.float32))
            np.save(root / split / "label" / f"{i}.npy", rng.integers(-1, 13, (288, 384)).astype(np.float32))
            np.save(
                root / split / "depth" / f"{i}.npy", rng.uniform(0.5, 10, (288, 384, 1)).astype(np.float32)
            )
            np.save(root / split / "normal" / f"{i}.npy", rng.normal(size=(288, 384, 3)).astype(np.float32))


def bench_gpu(steps: int) -> None:
    import torch

    from auxnas.controller.config import load_search_config
    from auxnas.evaluator.remote import run_trial
    from auxnas.search_space import basic_genotype, sample_genotype

    if not torch.cuda.is_available():
        print("gpu: CUDA is not available here; skipped")
        return
    cfg = load_search_config(ROOT / "configs" / "nyuv2-mobilenetv2.yaml").eval_config()
    with tempfile.TemporaryDirectory() as tmp:
        _write_nyuv2_shaped(Path(tmp), 96, 24)
        doc = cfg.model_dump()
        doc["data"]["root"] = tmp
        doc["train"]["steps"] = steps
        cfg = type(cfg).model_validate(doc)
        space = cfg.search_space()
        print(
            f"gpu: {torch.cuda.get_device_name()}; nyuv2-mobilenetv2 on NYUv2-shaped random data "
            f"(96 train images 288x384, crop {cfg.data.crop_size}), batch {cfg.train.batch_size}, {steps} steps, "
            f"amp {cfg.train.amp}"
        )
        run_trial(
            cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 5})}), None
        )  # warm-up
        rng = random.Random(0)
        for label, g in [("basic", basic_genotype(space))] + [
            (f"random {i}", sample_genotype(space, rng)) for i in range(3)
        ]:
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            t = time.perf_counter()
            r = run_trial(cfg, g)
            dt = time.perf_counter() - t
            peak = torch.cuda.max_memory_allocated()
            after = torch.cuda.memory_allocated()
            status = f"reward {r.reward:.4f}" if r.ok else f"FAILED {r.error}"
            print(
                f"  {label}: {dt:.1f} s ({dt / steps * 1000:.0f} ms/step incl. eval), {status}, peak "
                f"{(peak - before) / 2**20:.0f} MiB over the {before / 2**20:.0f} MiB before; after the trial "
                f"{after / 2**20:.0f} MiB allocated, {torch.cuda.memory_reserved() / 2**20:.0f} MiB reserved"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "synthetic-tiny.yaml"))
    parser.add_argument("--genotypes", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3, help="1: timing only")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="only the GPU benchmark")
    parser.add_argument("--gpu-steps", type=int, default=200)
    args = parser.parse_args()
    if args.gpu:
        bench_gpu(args.gpu_steps)
        return
    if not args.skip_generation:
        bench_generation()
    bench_preset(args.config, args.genotypes, args.seeds)


if __name__ == "__main__":
    main()
