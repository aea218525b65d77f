"""The evaluator: train one candidate (main network + auxiliary modules) and score it.

- `evaluator.evaluate.evaluate(config, genotype, *, early_stop_below=None) -> EvalResult`
  (`train_and_score(..., phase="final")` trains on the whole training split and scores on test)
- `evaluator.remote.submit(config, genotype, early_stop_below=None, evaluate_fn=None)`: the Ray task
- `evaluator.data.load_dataset(data_cfg, tasks)`: synthetic, nyuv2, dataset plugins and `python:` datasets
- `evaluator.plugins.load_callable(spec, group)`: the one plugin loader (entry points, `python:` specs)
- `evaluator.policy`: what a REST caller may name (allowed datasets, paths inside AUXNAS_DATA_DIR)
- `evaluator.testing`: fake evaluators for tests and benchmarks (the product never imports it)
- `evaluator.tasks`, `evaluator.metrics`, `evaluator.networks`, `evaluator.weighting`

Heavy imports (torch) happen in the submodules, not here.
"""
