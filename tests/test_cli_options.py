"""Options that tell the truth: what a config accepts works, a missing command is an error,
`--json` prints JSON alone, every CLI mistake is one line, and tables fit 80 columns."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import auxnas.evaluator.config as config_module
from auxnas.cli import calibrate, diagnose, evidence
from auxnas.cli import main as cli_main
from auxnas.controller.diagnosis import Runs
from auxnas.controller.diagnosis import diagnose as diagnose_figures
from auxnas.evaluator.config import ConfigError, parse_config
from auxnas.evaluator.result import EvalResult

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    if not any(getattr(c.callback, "__name__", "") == "diagnose" for c in cli_main.app.registered_commands):
        cli_main._register_commands()
    return CliRunner()


# --- what a config accepts ---------------------------------------------------------------------


def test_resnet50_is_refused_at_validation_when_torchvision_does_not_import(monkeypatch):
    monkeypatch.setattr(config_module, "torchvision_problem", lambda: "ModuleNotFoundError: no torchvision")
    with pytest.raises(ConfigError) as e:
        parse_config({"model": {"encoder": "resnet50"}})
    message = str(e.value)
    assert message.startswith("config: model.encoder: ") and "\n" not in message
    assert "resnet50 needs torchvision" in message and "no torchvision" in message
    assert "install the torchvision release built for your torch" in message
    monkeypatch.setattr(config_module, "torchvision_problem", lambda: None)
    assert parse_config({"model": {"encoder": "resnet50"}}).model.encoder == "resnet50"


def test_torchvision_problem_says_why_here():
    try:
        import torchvision.models  # noqa: F401
    except Exception:  # noqa: BLE001 - absent, or built for another torch
        assert config_module.torchvision_problem()
    else:
        assert config_module.torchvision_problem() is None


def test_the_old_decoder_key_is_accepted_and_dropped_and_nothing_else_is():
    old = parse_config({"model": {"decoder": "baseline", "aux_channels": 8}})
    assert old.model == parse_config({"model": {"aux_channels": 8}}).model
    assert "decoder" not in old.model.model_dump()
    with pytest.raises(ConfigError, match=r"^config: model: .*decoder: 'unet' is not a decoder"):
        parse_config({"model": {"decoder": "unet"}})
    for preset in (ROOT / "configs").glob("*.yaml"):
        assert "decoder" not in (yaml.safe_load(preset.read_text()).get("model") or {}), preset


# --- commands ----------------------------------------------------------------------------------


def test_a_missing_command_module_is_an_error(monkeypatch):
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ("auxnas.cli.no_such_area", *cli_main.COMMAND_MODULES))
    with pytest.raises(ModuleNotFoundError, match="auxnas.cli.no_such_area"):
        cli_main._register_commands()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--port", "0"], "error: Invalid value for '--port': "),
        (["no-such-command"], "error: No such command 'no-such-command'."),
        (["search", "--no-such-option"], "error: No such option: --no-such-option"),
        (["validate"], "error: Missing argument 'file'."),
        (["status", "not-a-number"], "error: Invalid value for 'search_id': "),
    ],
)
def test_usage_errors_are_one_line(runner, args, message):
    res = runner.invoke(cli_main.app, args)
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), res.stderr


def test_help_is_still_help(runner):
    for args in ([], ["--help"], ["serve", "--help"]):
        res = runner.invoke(cli_main.app, args)
        assert res.exit_code == 0 and res.stdout.startswith("Usage: "), (args, res.output)


def _fake_runs(jobs, parallel, resources):
    """Every diagnose job succeeds at once with seed-dependent scores (no training)."""
    results = []
    for name, seed, _config, _genotype in jobs:
        base = {"joint": 0.5, "basic": 0.52}.get(name, 0.55)
        score = base + 0.01 * seed
        metrics = {t: {"miou": score, "delta1": score} for t in ("segmentation", "depth")}
        results.append(EvalResult(ok=True, reward=score, metrics=metrics, cpu_seconds=1.0))
    return results


def test_diagnose_json_prints_json_alone(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(diagnose, "_run_all", _fake_runs)
    doc = {
        "name": "d",
        "tasks": ["segmentation", "depth"],
        "data": {"num_images": 20, "num_test_images": 6, "resolution": 16, "root": str(tmp_path)},
        "model": {"num_aux_inputs": 2},
    }
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = runner.invoke(cli_main.app, ["diagnose", str(path), "--seeds", "2", "--json"])
    assert res.exit_code == 0, res.output
    parsed = json.loads(res.stdout)  # the whole of stdout is the document
    assert parsed["diagnosis"]["verdict"] and parsed["diagnosis"]["verdict"] in res.stderr


# --- tables ------------------------------------------------------------------------------------

TASKS = ("segmentation", "depth", "normal")
METRIC = {"segmentation": "miou", "depth": "delta1", "normal": "within_22.5"}


def _printed(capsys, monkeypatch, print_table, doc) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    print_table(doc)
    return capsys.readouterr().out


def _fits(out: str, figures: list[str]) -> None:
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    lines = out.splitlines()
    for figure in figures:  # each figure whole on one line
        assert any(figure in line for line in lines), (figure, out)


def test_the_retrain_table_fits_80_columns(capsys, monkeypatch):
    def ms(m: float) -> dict:
        return {"mean": m, "std": 0.0213}

    rows = [
        {
            "name": name,
            "reward": ms(0.4123 + i / 100),
            "metrics": {t: {"miou": ms(0.312), "pixel_accuracy": ms(0.8812)} for t in TASKS},
            "train_params": 1_234_567 + i,
            "inference_params": 1_034_567,
        }
        for i, name in enumerate(("Joint", "basic", "searched", "single:segmentation"))
    ]
    rows.append({"name": "single:depth", "error": "NaN"})
    doc = {"config": "synthetic-compete", "seeds": [0, 1, 2], "tasks": list(TASKS), "rows": rows}
    out = _printed(capsys, monkeypatch, evidence._print_table, doc)
    _fits(out, ["0.3120 ± 0.0213", "0.8812 ± 0.0213", "0.4423 ± 0.0213", "1,234,570", "1,034,567"])
    assert "failed" in out


def test_the_diagnose_table_fits_80_columns(capsys, monkeypatch):
    scores = {t: [0.5012, 0.5234, 0.5121] for t in TASKS}
    joint = Runs(rewards=[0.4012, 0.4123, 0.4234], scores=scores)
    basic = Runs(rewards=[0.4112, 0.4223, 0.4334], scores={t: [0.5112, 0.5334, 0.5221] for t in TASKS})
    figures = diagnose_figures(joint, basic, {t: [0.5512, 0.5634, 0.5721] for t in TASKS})
    doc = {
        "config": "synthetic-compete",
        "setting": {"steps": 300},
        "seeds": [0, 1, 2],
        "score_metric": METRIC,
        "diagnosis": figures,
        "cpu_seconds_per_run": {"joint": 12.5, "basic": 14.25, **{f"single:{t}": 8.0 for t in TASKS}},
    }
    out = _printed(capsys, monkeypatch, diagnose._print_table, doc)
    single = figures["tasks"]["segmentation"]["single"]
    diff = figures["tasks"]["normal"]["competition"]["diff"]
    _fits(out, [f"{single['mean']:.4f} ± {single['std']:.4f}", f"{diff:+.4f}"])


def test_the_calibrate_table_fits_80_columns_with_many_replicates(capsys, monkeypatch):
    replicates = 8
    gains = [round(0.0123 * (r - 3), 4) for r in range(replicates)]
    doc = {
        "config": "synthetic-compete",
        "search_id": 12,
        "replicates": replicates,
        "joint": {"mean": 0.4012, "std": 0.0101},
        "per_genotype": [
            {"name": f"random-{i:02d}", "mean": 0.4123, "std": 0.0202, "gain_over_joint": gains}
            for i in range(3)
        ],
        "spread": 0.01,
        "noise": 0.02,
        "spread_to_noise": 0.5,
        "centred_noise": 0.01,
        "pairs": [],
        "beat_joint_share": 0.25,
        "target": 0.8,
        "reward_seeds_needed": None,
        "seconds_per_candidate": {"wall": 10.0, "cpu": 9.0},
    }
    out = _printed(capsys, monkeypatch, calibrate._print_table, doc)
    table = out.split("architecture spread")[0]
    _fits(table, ["0.4123", "0.0202", *{f"{g:+.4f}" for g in gains}])
    assert not re.search(r"\d…", out)


def test_the_status_tables_fit_80_columns(runner, tmp_path, monkeypatch):
    from auxnas.controller.config import SearchConfig
    from auxnas.db.migrate import migrate
    from auxnas.db.storage import SqlStorage
    from tests.test_db_storage import trial

    url = f"sqlite:///{tmp_path / 'status.db'}"
    storage = SqlStorage(url)
    migrate(engine=storage.engine)
    config = SearchConfig.model_validate(
        {"name": "a-long-search-name-for-a-table", "tasks": ["segmentation", "depth"]}
    )
    sid = storage.create_search(config, launched_by="cli")
    rows = [trial(0, kind="joint", reward=0.5123), trial(1, kind="basic", reward=0.5234)]
    rows += [
        trial(i, reward=0.5 + i / 1000, attempts=2, node={"id": "n", "ip": "192.168.100.200"})
        for i in range(2, 6)
    ]
    rows.append(
        trial(6, status="failed", reward=None, error={"type": "RuntimeError", "message": "loss is NaN"})
    )
    storage.add_trials(sid, rows)
    storage.dispose()
    monkeypatch.setenv("COLUMNS", "80")
    listing = runner.invoke(cli_main.app, ["status", "--database-url", url])
    one = runner.invoke(cli_main.app, ["status", str(sid), "--database-url", url])
    assert listing.exit_code == 0 and one.exit_code == 0, (listing.output, one.output)
    _fits(listing.stdout, ["0.5234", "0.5123", "5/40"])
    table = one.stdout[one.stdout.index("trials 0..6 of 7") :]  # the trials, then their gains
    _fits(table, ["0.5050", "0.5030", "succeeded", "candidate", rows[2].genotype_hash])
    assert "trial 6: RuntimeError: loss is NaN" in one.stdout
