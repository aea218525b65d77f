"""The Ray entry point: real evaluations on the CPU with num_gpus=0, and structured failures."""

from __future__ import annotations

import pytest

from auxnas.evaluator.config import EvalConfig
from auxnas.evaluator.remote import check_resources, failure_from_exception, get_result, run_trial, submit
from auxnas.evaluator.result import EvalResult
from auxnas.search_space import SearchSpace, basic_genotype


def _config(root: str, **train) -> EvalConfig:
    return EvalConfig.model_validate(
        {
            "tasks": ["segmentation", "depth"],
            "data": {"num_images": 16, "num_test_images": 4, "resolution": 16, "root": root},
            "model": {"aux_channels": 8, "num_aux_inputs": 2},
            "train": {"steps": 3, "batch_size": 4, "eval_batch_size": 8, **train},
            "resources": {"num_cpus": 1, "num_gpus": 0},
        }
    )


def raising_evaluate(config, genotype, *, early_stop_below=None):
    raise RuntimeError("boom\nsecond line")


def oom_evaluate(config, genotype, *, early_stop_below=None):
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


def echo_evaluate(config, genotype, *, early_stop_below=None):
    import os

    from auxnas.evaluator.data import load_dataset

    dataset = load_dataset(config.data, config.tasks)
    # the same worker process returns the same cached dataset object
    return EvalResult(ok=True, reward=early_stop_below, device=f"{os.getpid()}:{id(dataset)}")


def not_a_result(config, genotype, *, early_stop_below=None):
    return 0.5


@pytest.mark.slow
def test_ray_path_runs_a_real_evaluation_on_cpu(ray_session, tmp_path):
    cfg = _config(str(tmp_path))
    genotype = basic_genotype(SearchSpace(2, ("segmentation", "depth")))
    result = get_result(submit(cfg, genotype), timeout=300)
    assert isinstance(result, EvalResult) and result.ok, result.error
    assert result.device == "cpu" and 0.0 <= result.reward <= 1.0 and result.aux_params > 0
    # the same evaluation in-process gives the same reward (same seed, CPU)
    assert run_trial(cfg, genotype).reward == result.reward
    assert run_trial(cfg, None).aux_params == 0


def test_ray_path_turns_exceptions_into_failed_results(ray_session, tmp_path):
    cfg = _config(str(tmp_path))
    failed = ray_session.get(submit(cfg, None, evaluate_fn=raising_evaluate), timeout=120)
    assert not failed.ok and failed.error == {"type": "RuntimeError", "message": "boom second line"}
    oom = ray_session.get(submit(cfg, None, evaluate_fn=oom_evaluate), timeout=120)
    assert oom.error["type"] == "OutOfMemory"
    diverging = _config(str(tmp_path), steps=12)
    diverging = diverging.model_copy(update={"train": diverging.train.model_copy(update={"lr": 1e12})})
    nan = get_result(submit(diverging, basic_genotype(SearchSpace(2, ("segmentation", "depth")))))
    assert not nan.ok and nan.error["type"] == "NaNLoss"
    mismatch = get_result(submit(cfg, basic_genotype(SearchSpace(3, ("segmentation", "depth")))))
    assert mismatch.error["type"] == "ValueError" and "model.num_aux_inputs" in mismatch.error["message"]
    wrong = get_result(submit(cfg, None, evaluate_fn=not_a_result))
    assert wrong.error["type"] == "TypeError"


def test_early_stop_threshold_and_evaluate_fn_reach_the_worker(ray_session, tmp_path):
    cfg = _config(str(tmp_path))
    results = [get_result(submit(cfg, None, 0.25, echo_evaluate)) for _ in range(3)]
    assert all(r.reward == 0.25 for r in results)
    # a worker process that runs several trials builds its dataset once
    by_pid: dict[str, set[str]] = {}
    for r in results:
        pid, ident = r.device.split(":")
        by_pid.setdefault(pid, set()).add(ident)
    assert all(len(idents) == 1 for idents in by_pid.values())


def test_requests_no_node_can_hold_are_refused_naming_the_field(ray_session, tmp_path):
    doc = _config(str(tmp_path)).model_dump()
    doc["resources"]["num_gpus"] = 0.5
    with pytest.raises(ValueError, match=r"resources.num_gpus: no node offers 0.5 GPU\(s\) for one trial"):
        check_resources(EvalConfig.model_validate(doc).resources)
    doc["resources"] = {"num_gpus": 0, "num_cpus": 64}
    with pytest.raises(
        ValueError,
        match=r"resources.num_cpus: no node offers 64 CPU\(s\) for one trial: the most a node of the Ray cluster has is [0-9]",
    ):
        check_resources(EvalConfig.model_validate(doc).resources)
    check_resources(_config(str(tmp_path)).resources)  # one CPU: fits


def test_failure_from_exception_keeps_one_line():
    r = failure_from_exception(ValueError("a\n  b"))
    assert r.error == {"type": "ValueError", "message": "a b"} and not r.ok
    assert failure_from_exception(MemoryError()).error["type"] == "OutOfMemory"


def huge_allocation(config, genotype, *, early_stop_below=None):
    import torch

    torch.empty(1 << 50, dtype=torch.uint8, device="cuda")  # a petabyte: out of memory on any GPU
    raise AssertionError("unreachable")


needs_cuda = pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="CUDA is not available on this machine"
)


@needs_cuda
def test_cuda_trial_uses_amp_and_gives_its_memory_back(tmp_path):
    import torch

    doc = _config(str(tmp_path)).model_dump()
    doc["resources"]["num_gpus"] = 1
    cfg = EvalConfig.model_validate(doc)
    genotype = basic_genotype(SearchSpace(2, ("segmentation", "depth")))
    run_trial(cfg, genotype)  # warm-up: the dataset's GPU copy stays for the process's lifetime
    before = torch.cuda.memory_allocated()
    result = run_trial(cfg, genotype)
    assert result.ok, result.error
    assert result.device.startswith("cuda")
    assert torch.cuda.memory_allocated() <= before  # nothing of the trial is left allocated
    oom = run_trial(cfg, None, evaluate_fn=huge_allocation)
    assert oom.error["type"] == "OutOfMemory"
    assert torch.cuda.memory_allocated() <= before
