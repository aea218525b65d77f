"""Metrics on small hand-computed cases, including ignored / invalid pixels."""

from __future__ import annotations

import math

import pytest
import torch

from auxnas.evaluator.data.base import TaskInfo
from auxnas.evaluator.evaluate import geometric_mean
from auxnas.evaluator.metrics import ClassificationMetrics, DepthMetrics, NormalMetrics, SegmentationMetrics
from auxnas.evaluator.tasks import make_task


def _logits(pred: list[list[int]], num_classes: int) -> torch.Tensor:
    """(1, C, H, W) logits whose argmax is `pred`."""
    p = torch.tensor(pred)
    return torch.nn.functional.one_hot(p, num_classes).permute(2, 0, 1)[None].float()


def test_segmentation_miou_and_pixel_accuracy_with_ignored_pixels():
    target = torch.tensor([[[0, 0, 1], [1, 2, -1]]])
    pred = _logits([[0, 1, 1], [1, 2, 0]], 3)  # the last pixel is ignored whatever it predicts
    m = SegmentationMetrics(3)
    m.update(pred, target)
    out = m.compute()
    # class 0: tp 1, union 2 -> 0.5; class 1: tp 2, union 3 -> 2/3; class 2: tp 1, union 1 -> 1
    assert out["miou"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert out["pixel_acc"] == pytest.approx(4 / 5)


def test_segmentation_accumulates_over_batches_not_per_batch_means():
    m = SegmentationMetrics(2)
    m.update(_logits([[0, 0]], 2), torch.tensor([[[0, 0]]]))  # perfect batch
    m.update(_logits([[0, 0]], 2), torch.tensor([[[1, -1]]]))  # one wrong pixel, one ignored
    out = m.compute()
    # confusion: class 0 tp 2, fp 1 -> IoU 2/3; class 1 tp 0, fn 1 -> IoU 0
    assert out["miou"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert out["pixel_acc"] == pytest.approx(2 / 3)


def test_segmentation_miou_skips_classes_absent_from_labels_and_predictions():
    m = SegmentationMetrics(5)
    m.update(_logits([[0, 1]], 5), torch.tensor([[[0, 1]]]))
    assert m.compute()["miou"] == pytest.approx(1.0)


def test_depth_metrics_over_valid_pixels_only():
    target = torch.tensor([[[[1.0, 2.0], [4.0, 0.0]]]])  # the 0 is invalid
    pred = torch.tensor([[[[1.1, 3.0], [4.0, 123.0]]]])
    m = DepthMetrics()
    m.update(pred, target)
    out = m.compute()
    assert out["abs_err"] == pytest.approx((0.1 + 1.0 + 0.0) / 3)
    assert out["rel_err"] == pytest.approx((0.1 / 1 + 1.0 / 2 + 0.0) / 3)
    assert out["rmse"] == pytest.approx(math.sqrt((0.01 + 1.0 + 0.0) / 3))
    # ratios 1.1, 1.5, 1.0 -> <1.25: 2 of 3; <1.5625: 3 of 3
    assert out["delta1"] == pytest.approx(2 / 3)
    assert out["delta2"] == pytest.approx(1.0)
    assert out["delta3"] == pytest.approx(1.0)


def test_depth_metrics_handle_non_positive_predictions():
    m = DepthMetrics()
    m.update(torch.tensor([[[[-1.0]]]]), torch.tensor([[[[2.0]]]]))
    out = m.compute()
    assert out["delta1"] == 0.0 and math.isfinite(out["rel_err"])


def test_normal_angles_mean_median_and_thresholds_with_invalid_pixels():
    z = torch.tensor([0.0, 0.0, 1.0])
    truth = torch.stack([z, z, z, z, torch.zeros(3)])  # the last pixel is invalid
    angles = [0.0, 10.0, 25.0, 90.0]
    preds = [torch.tensor([math.sin(math.radians(a)), 0.0, math.cos(math.radians(a))]) * 3.0 for a in angles]
    preds.append(torch.tensor([1.0, 0.0, 0.0]))
    pred = torch.stack(preds).T.reshape(1, 3, 1, 5)
    m = NormalMetrics()
    m.update(pred, truth.T.reshape(1, 3, 1, 5))
    out = m.compute()
    assert out["mean_angle"] == pytest.approx(sum(angles) / 4, abs=1e-3)
    assert out["median_angle"] == pytest.approx(10.0, abs=0.01)  # lower median of 4 values
    assert out["within_11.25"] == pytest.approx(2 / 4)
    assert out["within_22.5"] == pytest.approx(2 / 4)
    assert out["within_30"] == pytest.approx(3 / 4)


def test_classification_accuracy():
    m = ClassificationMetrics()
    m.update(torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0]]), torch.tensor([0, 1, 1]))
    assert m.compute()["accuracy"] == pytest.approx(2 / 3)


def test_losses_ignore_invalid_pixels_and_never_return_nan():
    seg = make_task(TaskInfo("segmentation", "segmentation", 3))
    all_ignored = torch.full((1, 2, 2), -1)
    assert seg.loss(torch.randn(1, 3, 2, 2), all_ignored).item() == 0.0
    depth = make_task(TaskInfo("depth", "depth"))
    target = torch.tensor([[[[2.0, 0.0]]]])
    assert depth.loss(torch.tensor([[[[1.0, 50.0]]]]), target).item() == pytest.approx(1.0)
    normal = make_task(TaskInfo("normal", "normal"))
    t = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)
    assert normal.loss(t * 5.0, t).item() == pytest.approx(0.0, abs=1e-6)
    assert normal.loss(-t, t).item() == pytest.approx(2.0)


def test_reward_is_the_geometric_mean_and_zero_when_a_score_is_zero():
    assert geometric_mean([0.25, 1.0]) == pytest.approx(0.5)
    assert geometric_mean([0.5, 0.0]) == 0.0


def test_dwa_weights_follow_the_loss_ratio_of_the_two_previous_epochs():
    from auxnas.evaluator.weighting import make_weighting

    dwa = make_weighting("dwa", ["a", "b"], steps_per_epoch=2)
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0)}
    assert dwa.combine(losses).item() == pytest.approx(5.0)  # weights 1 for the first two epochs
    for a, b in [(1.0, 1.0), (1.0, 1.0), (0.5, 1.0), (0.5, 1.0)]:  # epoch means (1, 1) then (0.5, 1)
        dwa.end_step({"a": torch.tensor(a), "b": torch.tensor(b)})
    ea, eb = math.exp(0.5 / 2.0), math.exp(1.0 / 2.0)
    assert dwa.weights == pytest.approx([2 * ea / (ea + eb), 2 * eb / (ea + eb)])
    assert dwa.combine(losses).item() == pytest.approx(2.0 * dwa.weights[0] + 3.0 * dwa.weights[1])


def test_uncertainty_weighting_learns_log_variances():
    from auxnas.evaluator.weighting import make_weighting

    uw = make_weighting("uncertainty", ["a", "b"], steps_per_epoch=1)
    loss = uw.combine({"a": torch.tensor(2.0), "b": torch.tensor(4.0)})
    assert loss.item() == pytest.approx(0.5 * 2.0 + 0.5 * 4.0)  # log variances start at 0
    loss.backward()
    # d/ds (0.5 e^-s L + 0.5 s) at s=0 = 0.5 - 0.5 L
    assert uw.log_vars.grad.tolist() == pytest.approx([0.5 - 1.0, 0.5 - 2.0])
    with pytest.raises(ValueError, match="train.weighting"):
        make_weighting("gradnorm", ["a"], 1)
