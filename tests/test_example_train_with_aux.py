"""examples/train_with_aux.py: trains with the auxiliary modules of a genotype, deploys without
them, and its printed parameter check holds; bad genotype files end in one `error:` line.

One test runs the script as a user does; the others call its `main()` in this process, which
saves a torch import per case. One torch thread: on a busy machine more threads are slower."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from auxnas.search_space import SearchSpace, basic_genotype, sample_genotype

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "examples" / "train_with_aux.py"
FAST = ["--steps", "3", "--batch-size", "4", "--train-images", "8", "--size", "16", "--aux-channels", "8"]
FAST += ["--threads", "1"]
PARAMS = re.compile(
    r"^inference network: (\d+) parameters == network without auxiliary modules: (\d+)$", re.M
)


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_with_aux_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)


def run_main(example, capsys, *args: str) -> str:
    example.main([*args, *FAST])
    return capsys.readouterr().out


def refusal(example, capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        example.main([*args, *FAST])
    assert isinstance(exit_info.value.code, str), exit_info.value.code  # sys.exit(message): status 1
    assert capsys.readouterr().out == ""
    return exit_info.value.code


@pytest.mark.slow
def test_the_script_trains_basic_and_the_deployed_network_has_the_plain_parameter_count():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *FAST], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    m = PARAMS.search(out)
    assert m, out
    deployed, plain = int(m[1]), int(m[2])
    sizes = re.search(r"^training: network (\d+) parameters \+ auxiliary modules (\d+)$", out, re.M)
    assert sizes, out
    assert deployed == plain == int(sizes[1]) and int(sizes[2]) > 0
    basic = basic_genotype(SearchSpace(num_inputs=3, tasks=("segmentation", "depth", "normal")))
    assert f"genotype: {basic.summary()}" in out
    assert re.search(r"^step +3 +main loss \d+\.\d+ +aux loss \d+\.\d+$", out, re.M), out
    assert re.search(
        r"^held-out scenes: segmentation mIoU [\d.]+, depth abs err [\d.]+, normal mean angle", out, re.M
    )


def test_an_exported_genotype_file_is_used_and_the_saved_network_has_no_aux_weights(
    example, capsys, tmp_path
):
    space = SearchSpace(num_inputs=2, tasks=("depth", "normal"))
    genotype = sample_genotype(space, random.Random(7))
    path = tmp_path / "best.json"
    path.write_text(json.dumps(genotype.to_json(reward=0.5)))
    saved = tmp_path / "net.pt"
    out = run_main(example, capsys, "--genotype", str(path), "--save", str(saved))
    assert f"genotype: {genotype.summary()}" in out
    m = PARAMS.search(out)
    assert m and m[1] == m[2], out
    state = torch.load(saved, weights_only=True)
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert sum(v.numel() for k, v in state.items() if not k.endswith(buffers)) == int(m[1])
    assert all(k.startswith(("encoder.", "heads.")) for k in state)
    assert {k.split(".")[1] for k in state if k.startswith("heads.")} == {"depth", "normal"}
    assert "segmentation" not in out.split("held-out scenes:")[1]


def test_aux_losses_reach_the_shared_encoder_but_not_the_deployed_size(example, capsys):
    with_aux = run_main(example, capsys)
    without = run_main(example, capsys, "--aux-weight", "0")
    assert PARAMS.search(with_aux)[1] == PARAMS.search(without)[1]
    losses = [re.search(r"^step +3 +main loss (\S+)", out, re.M)[1] for out in (with_aux, without)]
    assert losses[0] != losses[1]  # same seed and data: only the aux gradients differ


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "invalid JSON"), (json.dumps({"format": "auxnas-genotype", "version": 2}), "version")],
)
def test_a_bad_genotype_file_ends_in_one_error_line(example, capsys, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    text = refusal(example, capsys, "--genotype", str(path))
    assert "\n" not in text and text.startswith(f"error: {path}") and message in text, text


def test_a_genotype_for_tasks_without_example_data_is_refused(example, capsys, tmp_path):
    path = tmp_path / "cls.json"
    path.write_text(
        json.dumps(
            basic_genotype(SearchSpace(num_inputs=2, tasks=("segmentation", "classification"))).to_json()
        )
    )
    assert refusal(example, capsys, "--genotype", str(path)) == (
        f"error: {path}: task 'classification': this example has data for segmentation, depth, normal only"
    )
