"""The final retrain: Joint, basic and the searched genotype on the whole training split, scored on
the test split; and `auxnas retrain` writing JSON and Markdown or refusing a mismatched genotype."""

from __future__ import annotations

import json
import random

import pytest
import yaml
from typer.testing import CliRunner

import auxnas.evaluator.retrain as retrain_module
from auxnas.cli.main import _register_commands
from auxnas.cli.main import app as cli_app
from auxnas.evaluator.config import EvalConfig
from auxnas.evaluator.evaluate import train_and_score
from auxnas.evaluator.retrain import retrain
from auxnas.search_space import SearchSpace, sample_genotype

TASKS = ["segmentation", "depth"]


def _doc(tmp_path) -> dict:
    return {
        "name": "retrain-tiny",
        "tasks": TASKS,
        "data": {"num_images": 16, "num_test_images": 8, "resolution": 16, "root": str(tmp_path / "cache")},
        "model": {"num_aux_inputs": 2, "aux_channels": 8},
        "train": {"steps": 2, "batch_size": 4},
    }


@pytest.fixture
def config(tmp_path) -> EvalConfig:
    return EvalConfig.model_validate({k: v for k, v in _doc(tmp_path).items() if k != "name"})


@pytest.fixture
def searched():
    return sample_genotype(SearchSpace(2, tuple(TASKS)), random.Random(3))


def test_rows_scored_on_the_test_split_with_inference_params_of_joint(config, searched, monkeypatch):
    phases = []

    def spy(cfg, genotype, **kw):
        phases.append(kw.get("phase"))
        return train_and_score(cfg, genotype, **kw)

    monkeypatch.setattr(retrain_module, "train_and_score", spy)
    report = retrain(config, {"searched": searched}, seeds=[0, 1])
    assert phases == ["final"] * 6
    doc = report.to_dict()
    rows = {r["name"]: r for r in doc["rows"]}
    assert list(rows) == ["joint", "basic", "searched"]
    assert all(r["seeds_ok"] == 2 and r["seeds_failed"] == 0 for r in rows.values())
    joint_params = rows["joint"]["inference_params"]
    assert rows["joint"]["train_params"] == joint_params
    for name in ("basic", "searched"):
        assert rows[name]["inference_params"] == joint_params  # aux modules are dropped
        assert rows[name]["train_params"] > joint_params
    assert rows["searched"]["genotype_hash"] == searched.canonical_hash()
    assert set(rows["basic"]["metrics"]) == set(TASKS)
    assert 0.0 <= rows["searched"]["reward"]["mean"] <= 1.0

    # the joint row is exactly a final-phase (test split) evaluation with that seed, not meta-val
    test_split = train_and_score(config.model_copy(update={"seed": 1}), None, phase="final")
    meta_val = train_and_score(config.model_copy(update={"seed": 1}), None, phase="search")
    assert report.rows[0].results[1].reward == pytest.approx(test_split.reward, abs=1e-9)
    assert test_split.metrics != meta_val.metrics

    md = report.to_markdown()
    assert "| joint |" in md and "| searched |" in md and "test split" in md
    assert f"{joint_params:,}" in md


def test_single_task_baselines(config, searched):
    report = retrain(config, {"searched": searched}, seeds=[0], single_task=True)
    rows = {r["name"]: r for r in report.to_dict()["rows"]}
    assert list(rows)[-2:] == ["single:segmentation", "single:depth"]
    assert set(rows["single:depth"]["metrics"]) == {"depth"}
    assert rows["single:depth"]["tasks"] == ["depth"]


def test_no_seeds_is_refused(config, searched):
    with pytest.raises(ValueError, match="seeds"):
        retrain(config, {"searched": searched}, seeds=[])


@pytest.fixture(scope="module")
def runner():
    _register_commands()
    return CliRunner()


def test_cli_retrain_writes_json_and_markdown(runner, tmp_path, searched):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump(_doc(tmp_path)))
    geno = tmp_path / "best.json"
    geno.write_text(json.dumps(searched.to_json(reward=0.5)))
    out = tmp_path / "out"
    result = runner.invoke(cli_app, ["retrain", str(geno), str(preset), "--seeds", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "retrain.json").read_text())
    assert [r["name"] for r in doc["rows"]] == ["joint", "basic", "searched"]
    assert doc["seeds"] == [0, 1] and doc["config"] == "retrain-tiny"
    assert doc["genotype_file"] == str(geno)
    md = (out / "retrain.md").read_text()
    assert md.count("\n| ") >= 4 and "retrain-tiny" in md
    assert "searched" in result.stdout


def test_cli_retrain_rejects_genotype_of_other_tasks(runner, tmp_path):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump(_doc(tmp_path)))
    other = sample_genotype(SearchSpace(2, ("segmentation", "normal")), random.Random(0))
    geno = tmp_path / "other.json"
    geno.write_text(json.dumps(other.to_json()))
    result = runner.invoke(cli_app, ["retrain", str(geno), str(preset), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {geno}: ") and "task" in lines[0]
    assert not (tmp_path / "out" / "retrain.json").exists()


def test_cli_retrain_bad_files(runner, tmp_path, searched):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump({**_doc(tmp_path), "train": {"steps": 0}}))
    geno = tmp_path / "g.json"
    geno.write_text(json.dumps(searched.to_json()))
    result = runner.invoke(cli_app, ["retrain", str(geno), str(preset)])
    assert (
        result.exit_code == 2
        and result.output.strip()
        == f"error: {preset}: train.steps: Input should be greater than or equal to 1"
    )
    result = runner.invoke(cli_app, ["retrain", str(tmp_path / "missing.json"), str(preset)])
    assert result.exit_code == 2 and result.output.strip().startswith("error: ")
    assert len(result.output.strip().splitlines()) == 1
