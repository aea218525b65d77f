"""One evaluation end to end on tiny configs: determinism, Joint vs genotype, failures, early stop."""

from __future__ import annotations

import random

import pytest
import torch

from auxnas.evaluator.config import EvalConfig
from auxnas.evaluator.evaluate import evaluate, train_and_score
from auxnas.search_space import SearchSpace, basic_genotype, sample_genotype

TASKS = ["segmentation", "depth", "normal"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("synthetic"))


def tiny(data_root: str, **sections) -> EvalConfig:
    doc = {
        "seed": 0,
        "tasks": TASKS,
        "data": {"num_images": 20, "num_test_images": 6, "resolution": 16, "root": data_root},
        "model": {"aux_channels": 8, "num_aux_inputs": 2},
        "train": {"steps": 4, "batch_size": 4, "eval_batch_size": 8, "lr": 0.02},
    }
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return EvalConfig.model_validate(doc)


def space(cfg: EvalConfig) -> SearchSpace:
    return SearchSpace(cfg.model.num_aux_inputs, tuple(cfg.tasks))


def test_same_seed_and_genotype_give_the_identical_reward(data_root):
    cfg = tiny(data_root)
    genotype = sample_genotype(space(cfg), random.Random(4))
    a, b = evaluate(cfg, genotype), evaluate(cfg, genotype)
    assert a.ok and b.ok
    assert a.reward == b.reward and a.metrics == b.metrics
    c = evaluate(cfg.model_copy(update={"seed": 1}), genotype)
    assert c.metrics != a.metrics


def test_result_fields_joint_and_genotype(data_root):
    cfg = tiny(data_root)
    joint = evaluate(cfg, None)
    basic = evaluate(cfg, basic_genotype(space(cfg)))
    for r in (joint, basic):
        assert r.ok and r.error is None and 0.0 <= r.reward <= 1.0
        assert r.steps == 4 and r.device == "cpu" and not r.early_stopped
        assert r.train_seconds > 0 and r.eval_seconds > 0
        assert set(r.metrics) == set(TASKS)
        assert {"miou", "pixel_acc"} <= set(r.metrics["segmentation"])
        assert {"abs_err", "rel_err", "rmse", "delta1", "delta2", "delta3"} <= set(r.metrics["depth"])
        assert {"mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30"} <= set(
            r.metrics["normal"]
        )
    assert joint.aux_params == 0 and basic.aux_params > 0
    assert joint.main_params == basic.main_params > 0  # the deployed network is the same
    scores = [
        basic.metrics["segmentation"]["miou"],
        basic.metrics["depth"]["delta1"],
        basic.metrics["normal"]["within_22.5"],
    ]
    assert basic.reward == pytest.approx((scores[0] * scores[1] * scores[2]) ** (1 / 3))


def test_the_main_network_starts_from_the_same_weights_for_every_candidate(data_root, monkeypatch):
    import auxnas.evaluator.evaluate as ev

    seen = []
    original = ev.build_network

    def spy(*args, **kwargs):
        net = original(*args, **kwargs)
        seen.append({k: v.clone() for k, v in net.state_dict().items()})
        return net

    monkeypatch.setattr(ev, "build_network", spy)
    cfg = tiny(data_root, train={"steps": 1})
    evaluate(cfg, None)
    evaluate(cfg, sample_genotype(space(cfg), random.Random(1)))
    assert all(torch.equal(seen[0][k], seen[1][k]) for k in seen[0])


def test_genotype_space_must_match_the_config(data_root):
    cfg = tiny(data_root)
    with pytest.raises(ValueError, match="model.num_aux_inputs"):
        evaluate(cfg, basic_genotype(SearchSpace(3, tuple(TASKS))))
    with pytest.raises(ValueError, match="tasks:"):
        evaluate(cfg, basic_genotype(SearchSpace(2, ("segmentation", "depth"))))
    with pytest.raises(ValueError, match="model.num_aux_inputs: 5 is more than"):
        evaluate(tiny(data_root, model={"num_aux_inputs": 5}), None)


def test_nan_loss_becomes_a_structured_failure(data_root):
    cfg = tiny(data_root, train={"steps": 12})
    # an lr far past the schema's bound (which exists because such an lr diverges)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"lr": 1e12})})
    result = evaluate(cfg, basic_genotype(space(cfg)))
    assert not result.ok and result.reward is None
    assert result.error["type"] == "NaNLoss" and "step" in result.error["message"]


def test_early_stop_reports_the_partial_reward(data_root):
    cfg = tiny(data_root, train={"steps": 6, "early_stop_fraction": 0.5})
    g = basic_genotype(space(cfg))
    stopped = evaluate(cfg, g, early_stop_below=1.01)  # nothing reaches a reward above 1
    assert stopped.ok and stopped.early_stopped and stopped.steps == 3
    assert 0.0 <= stopped.reward <= 1.0
    kept = evaluate(cfg, g, early_stop_below=0.0)
    assert kept.ok and not kept.early_stopped and kept.steps == 6
    assert evaluate(cfg, g).reward == kept.reward  # the mid-training check does not change the run


@pytest.mark.parametrize("weighting", ["uncertainty", "dwa"])
def test_loss_weightings_train(data_root, weighting):
    cfg = tiny(data_root, train={"weighting": weighting, "steps": 6, "batch_size": 8})
    result = evaluate(cfg, basic_genotype(space(cfg)))
    assert result.ok and result.reward is not None


def test_classification_task_mobilenetv2_adam_ema_bn_and_crop(data_root):
    cfg = tiny(
        data_root,
        tasks=["classification", "depth"],
        data={"resolution": 32, "crop_size": [24, 24]},
        model={"encoder": "mobilenetv2", "width_mult": 0.35, "num_aux_inputs": 3},
        train={"optimizer": "adam", "lr": 1e-3, "ema_decay": 0.9, "bn_recalibration": 2, "steps": 3},
    )
    result = evaluate(cfg, sample_genotype(space(cfg), random.Random(0)))
    assert result.ok, result.error
    assert set(result.metrics["classification"]) == {"accuracy"}


def test_final_phase_scores_on_the_test_split(data_root):
    cfg = tiny(data_root)
    search = train_and_score(cfg, None, phase="search")
    final = train_and_score(cfg, None, phase="final")
    assert search.ok and final.ok and search.metrics != final.metrics
    with pytest.raises(ValueError, match="phase"):
        train_and_score(cfg, None, phase="test")


def test_pretrained_encoder_weights_from_a_local_file(data_root, tmp_path):
    from auxnas.evaluator.networks.encoders import TinyEncoder

    weights = tmp_path / "enc.pt"
    torch.save(TinyEncoder(3).state_dict(), weights)
    assert evaluate(tiny(data_root, model={"pretrained": str(weights)}), None).ok
    torch.save({"nope": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="model.pretrained: .*does not match"):
        evaluate(tiny(data_root, model={"pretrained": str(tmp_path / "bad.pt")}), None)
    with pytest.raises(ValueError, match="model.pretrained: .* is not a file"):
        evaluate(tiny(data_root, model={"pretrained": str(tmp_path / "missing.pt")}), None)


def test_evaluate_leaves_the_callers_threads_and_rng_alone(data_root):
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    evaluate(tiny(data_root, train={"steps": 1}), None)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads
