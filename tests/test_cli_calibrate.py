"""`auxnas calibrate`: bad flags store nothing; a run writes its figures and ends with the verdict."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from auxnas.cli.main import _register_commands
from auxnas.cli.main import app as cli_app
from tests.service_support import db_url  # noqa: F401

CONFIG = {
    "name": "cal",
    "tasks": ["segmentation", "depth"],
    "model": {"num_aux_inputs": 2},
    "search": {"strategy": "random", "budget": 4, "parallel_trials": 2},
    "controller": {"episodes_per_update": 2},
}


@pytest.fixture
def cli(tmp_path, db_url, monkeypatch):  # noqa: F811
    monkeypatch.setenv("AUXNAS_DATABASE_URL", db_url)
    monkeypatch.setenv("AUXNAS_DATA_DIR", str(tmp_path / "runs"))
    config = tmp_path / "cal.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    _register_commands()

    def invoke(*args: str):
        return CliRunner().invoke(cli_app, ["calibrate", str(config), *args])

    return invoke


def _searches(cli_runner_env_url: str) -> int:
    from auxnas.db.storage import SqlStorage

    st = SqlStorage(cli_runner_env_url)
    try:
        return st.list_searches()[1]
    finally:
        st.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicates", "1"], "error: --replicates: Input should be greater than or equal to 2"),
        (["--genotypes", "2"], "error: --genotypes: Input should be greater than or equal to 3"),
        (["--genotypes", "-4"], "error: --genotypes: Input should be greater than or equal to 3"),
        (["--evaluator", "nope"], "error: --evaluator: "),
    ],
)
def test_bad_flags_give_one_line_and_store_nothing(cli, db_url, args, message):  # noqa: F811
    res = cli(*args)
    assert res.exit_code == 2 and res.output.startswith(message) and res.output.count("\n") == 1
    from auxnas.db.migrate import migrate

    migrate(db_url)
    assert _searches(db_url) == 0


@pytest.mark.usefixtures("ray_session")
def test_calibrate_writes_json_png_and_ends_with_the_verdict(cli, tmp_path):
    out = tmp_path / "out"
    res = cli("--genotypes", "4", "--evaluator", "fake-hashed", "-o", str(out))
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith(("reward ranks architectures (spearman", "reward is dominated by noise (spearman"))
    doc = json.loads((out / "calibration.json").read_text())
    # a reward fixed per genotype, whatever the seed: the replicates agree exactly
    assert doc["replicates"] == 2 and len(doc["per_genotype"]) == 5 and doc["spearman"] == pytest.approx(1.0)
    assert doc["noise"] == 0.0 and last.startswith("reward ranks architectures (spearman 1.00")
    assert (out / "calibration.png").read_bytes().startswith(b"\x89PNG")
    assert "spearman" in res.output and "Spearman-Brown" in res.output


def test_calibrate_json_prints_json_alone_and_the_verdict_on_stderr(cli, tmp_path):
    res = cli("--genotypes", "4", "--evaluator", "fake-hashed", "-o", str(tmp_path / "out"), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)  # nothing but the document on stdout
    assert res.stderr.strip().splitlines()[-1] == doc["verdict"]  # after the progress lines
