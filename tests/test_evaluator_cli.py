"""`auxnas evaluate`: a readable table or JSON, and one clear line for every user mistake."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from auxnas.cli.main import _register_commands
from auxnas.cli.main import app as cli_app
from auxnas.search_space import SearchSpace, basic_genotype


@pytest.fixture(scope="module")
def runner():
    _register_commands()
    return CliRunner()


def _preset(tmp_path, **train) -> str:
    path = tmp_path / "tiny.yaml"
    doc = {
        "name": "cli-tiny",
        "tasks": ["segmentation", "depth"],
        "data": {"num_images": 16, "num_test_images": 4, "resolution": 16, "root": str(tmp_path / "cache")},
        "model": {"num_aux_inputs": 2, "aux_channels": 8},
        "train": {"steps": 2, "batch_size": 4, **train},
        "search": {"budget": 3},
    }
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_evaluate_prints_a_table(runner, tmp_path):
    result = runner.invoke(cli_app, ["evaluate", _preset(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "miou *" in result.output and "delta1 *" in result.output
    assert "reward (geometric mean" in result.output and "auxiliary" in result.output


def test_evaluate_json_for_joint_and_a_genotype_file(runner, tmp_path):
    preset = _preset(tmp_path)
    joint = runner.invoke(cli_app, ["evaluate", preset, "--genotype", "none", "--json"])
    assert joint.exit_code == 0, joint.output
    doc = json.loads(joint.stdout)
    assert doc["ok"] and doc["aux_params"] == 0 and set(doc["metrics"]) == {"segmentation", "depth"}
    geno = tmp_path / "g.json"
    geno.write_text(json.dumps(basic_genotype(SearchSpace(2, ("segmentation", "depth"))).to_json()))
    with_file = runner.invoke(cli_app, ["evaluate", preset, "-g", str(geno), "--json", "--seed", "3"])
    assert with_file.exit_code == 0, with_file.output
    assert json.loads(with_file.stdout)["aux_params"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--genotype", "nonsense"], "--genotype: 'nonsense' is neither a file nor 'basic' or 'none'"),
    ],
)
def test_bad_genotype_choice(runner, tmp_path, args, message):
    result = runner.invoke(cli_app, ["evaluate", _preset(tmp_path), *args])
    assert result.exit_code == 2 and f"error: {message}" in result.output


def test_config_errors_name_the_field(runner, tmp_path):
    bad = runner.invoke(cli_app, ["evaluate", _preset(tmp_path, steps=0)])
    assert bad.exit_code == 2 and "train.steps" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(cli_app, ["evaluate", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "cannot read config" in missing.output
    mismatch = tmp_path / "g3.json"
    mismatch.write_text(json.dumps(basic_genotype(SearchSpace(3, ("segmentation", "depth"))).to_json()))
    wrong = runner.invoke(cli_app, ["evaluate", _preset(tmp_path), "-g", str(mismatch)])
    assert wrong.exit_code == 2 and "error: model.num_aux_inputs" in wrong.output
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert runner.invoke(cli_app, ["evaluate", _preset(tmp_path), "-g", str(broken)]).exit_code == 2


def test_a_failed_evaluation_exits_1_with_its_error(runner, tmp_path):
    path = tmp_path / "nan.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "cli-nan",
                "tasks": ["parts", "count"],
                "data": {
                    "name": "python:tests.service_support:exploding_dataset",
                    "num_images": 16,
                    "num_test_images": 4,
                },
                "model": {"num_aux_inputs": 2, "aux_channels": 8},
                "train": {"steps": 4, "batch_size": 4},
            }
        )
    )
    result = runner.invoke(cli_app, ["evaluate", str(path)])
    assert result.exit_code == 1 and "NaNLoss" in result.output, result.output
