"""Run one evaluation as a Ray task: `submit(config, genotype) -> ObjectRef[EvalResult]`.

    ref = submit(config, genotype, early_stop_below=0.3)
    result = get_result(ref)          # or ray.get(ref); an EvalResult either way

The task asks Ray for `config.resources.num_cpus` / `num_gpus` (fractional GPUs allowed). It
never raises through Ray: an exception, a NaN loss or a CUDA out-of-memory becomes
`EvalResult.failure(type, message)`. After a trial that used CUDA the task frees GPU memory
(gc and `torch.cuda.empty_cache()`), so the next trial on that worker starts from a clean device.
The task first reports its start to `evaluator.starts` (when the driver keeps a `StartWatch`), so
a search can tell trials Ray runs from trials waiting for resources, then lowers its process's
CPU priority (`evaluator.priority`: nice 15 unless `AUXNAS_WORKER_NICE` says otherwise).
Datasets are cached per worker process by `evaluator.data.load_dataset`, so a worker that runs
many candidates prepares its tensors once.

Only a worker process that dies (killed by the OS, node lost) surfaces as a Ray error from
`ray.get`; `get_result` turns that into a failed `EvalResult` whose error has `system: true`
(not the architecture's failure: the driver runs it again). `check_resources` raises ValueError
(naming the field) when no node of the cluster can hold one trial.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from auxnas.evaluator.result import EvalResult, one_line

if TYPE_CHECKING:
    import ray

    from auxnas.evaluator.config import EvalConfig
    from auxnas.search_space import Genotype

EvaluateFn = Callable[..., EvalResult]

_REMOTE_FN: Any = None


def submit(
    config: EvalConfig,
    genotype: Genotype | None,
    early_stop_below: float | None = None,
    evaluate_fn: EvaluateFn | None = None,
) -> ray.ObjectRef:
    """Start the evaluation of `genotype` (None = Joint baseline) as a Ray task.

    `evaluate_fn` replaces `evaluator.evaluate.evaluate` (same signature; it must be picklable,
    i.e. a module-level function): tests of the controller pass fast fakes through it.
    """
    from auxnas.evaluator.starts import board_name

    res = config.resources
    return (
        _remote_function()
        .options(num_cpus=res.num_cpus, num_gpus=res.num_gpus)
        .remote(config, genotype, early_stop_below, evaluate_fn, board_name())
    )


def check_resources(resources: Any) -> None:
    """Raise ValueError naming the field when no alive node of the Ray cluster can hold one
    trial's `num_cpus` and `num_gpus` together: such a task would wait forever."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(
        n.get("CPU", 0.0) >= resources.num_cpus and n.get("GPU", 0.0) >= resources.num_gpus for n in nodes
    ):
        return
    most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    field, asked, has, what = (
        ("num_gpus", resources.num_gpus, most_gpus, "GPU")
        if resources.num_gpus > most_gpus
        else ("num_cpus", resources.num_cpus, most_cpus, "CPU")
    )
    hint = "; set resources.num_gpus: 0 to run on CPUs" if field == "num_gpus" else ""
    raise ValueError(
        f"resources.{field}: no node offers {asked:g} {what}(s) for one trial: "
        f"the most a node of the Ray cluster has is {has:g}{hint}"
    )


def get_result(ref: ray.ObjectRef, timeout: float | None = None) -> EvalResult:
    """`ray.get` that also turns a dead worker or a cancelled task into a failed result."""
    import ray
    from ray.exceptions import GetTimeoutError, RayError, TaskCancelledError

    try:
        return ray.get(ref, timeout=timeout)
    except GetTimeoutError:
        raise
    except (TaskCancelledError, RayError) as e:
        # the evaluation did not fail, its worker process or node did: `system` marks it so
        result = EvalResult.failure(type(e).__name__, one_line(str(e)) or type(e).__name__)
        result.error["system"] = True
        return result


def run_trial(
    config: EvalConfig,
    genotype: Genotype | None,
    early_stop_below: float | None = None,
    evaluate_fn: EvaluateFn | None = None,
) -> EvalResult:
    """The body of the Ray task (also callable in-process): never raises, always cleans up."""
    try:
        if evaluate_fn is None:
            from auxnas.evaluator.evaluate import evaluate as evaluate_fn
        cpu_start = time.process_time()
        result = evaluate_fn(config, genotype, early_stop_below=early_stop_below)
        if not isinstance(result, EvalResult):
            return EvalResult.failure(
                "TypeError", f"evaluate_fn returned {type(result).__name__}, not EvalResult"
            )
        result.node = _this_node()
        result.cpu_seconds = time.process_time() - cpu_start  # every thread of this worker process
        return result
    except Exception as e:  # a trial must never take its worker (or the search) down with it
        return failure_from_exception(e)
    finally:
        release_memory()


def failure_from_exception(e: BaseException) -> EvalResult:
    if _is_out_of_memory(e):
        return EvalResult.failure("OutOfMemory", one_line(str(e)) or "CUDA out of memory", node=_this_node())
    return EvalResult.failure(type(e).__name__, one_line(str(e)) or type(e).__name__, node=_this_node())


def _this_node() -> dict[str, str] | None:
    """The Ray node running this code, or None outside a Ray worker."""
    try:
        import ray

        if not ray.is_initialized():
            return None
        return {"id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address()}
    except Exception:  # noqa: BLE001 - the node is information, never a reason to fail
        return None


def release_memory() -> None:
    """Drop what the finished trial left behind and hand cached GPU blocks back to the driver.

    Only where the trial used CUDA: a forced `gc.collect()` costs milliseconds per trial (more
    in a worker holding datasets), and importing torch just to ask costs seconds."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    gc.collect()  # tensors in reference cycles hold GPU blocks until collected
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def _is_out_of_memory(e: BaseException) -> bool:
    try:
        import torch

        if isinstance(e, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(e, (RuntimeError, MemoryError)) and (
        isinstance(e, MemoryError) or "out of memory" in str(e).lower()
    )


def _remote_function():
    global _REMOTE_FN
    if _REMOTE_FN is None:
        import ray

        # max_retries=0: a trial that kills its worker is reported, not silently run again
        _REMOTE_FN = ray.remote(max_retries=0)(_ray_task)
    return _REMOTE_FN


def _ray_task(config, genotype, early_stop_below, evaluate_fn, start_board: str | None) -> EvalResult:  # noqa: ANN001
    from auxnas.evaluator.priority import lower_priority
    from auxnas.evaluator.starts import report_start

    report_start(start_board)  # from now on the trial is running, not waiting for resources
    try:
        lower_priority()  # trials yield the CPU to the API and the search's own bookkeeping
    except ValueError as e:
        return EvalResult.failure("ValueError", str(e))
    return run_trial(config, genotype, early_stop_below, evaluate_fn)
