"""Every malformed genotype document is rejected with its own message, by the API and the CLI."""

from __future__ import annotations

import copy
import json
import re

import pytest
from typer.testing import CliRunner

from auxnas.cli.main import app
from auxnas.search_space import GenotypeError, SearchSpace, basic_genotype, load_genotype_file, parse_genotype

SPACE = SearchSpace(3, ("segmentation", "depth"))
BASIC = basic_genotype(SPACE).to_json(reward=0.5, metrics={"segmentation": {"miou": 0.4}})


def _set(path, value):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _delete(path):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


CASES = {
    "wrong format": (_set(["format"], "other"), r"^format: expected 'auxnas-genotype'"),
    "wrong version": (_set(["version"], 3), r"^version: unsupported version 3 \(this reads 1 and 2\)"),
    "answer field in version 1": (
        _set(["recommended"], True),
        r"^recommended: unknown field \(version 2 documents carry it\)",
    ),
    "version 2 without recommended": (_set(["version"], 2), r"^recommended: missing"),
    "version 2 recommended not a boolean": (
        lambda d: d.update(version=2, recommended="yes", answer=None),
        r"^recommended: must be true or false",
    ),
    "version 2 answer not an object": (
        lambda d: d.update(version=2, recommended=False, answer=[1]),
        r"^answer: must be an object or null",
    ),
    "version 2 recommended without its answer": (
        lambda d: d.update(version=2, recommended=True, answer=None),
        r"^answer: a recommended genotype carries the answer",
    ),
    "unknown top field": (_set(["extra"], 1), r"^extra: unknown field"),
    "missing space": (_delete(["space"]), r"^space: missing"),
    "bad num_inputs": (_set(["space", "num_inputs"], 0), r"^space\.num_inputs:"),
    "changed op list": (_set(["space", "adaptor_ops"], ["conv_1x1"]), r"^space\.adaptor_ops:"),
    "unknown op": (
        _set(["cells", 2, "adaptors", 1], "conv_7x7"),
        r"^cells\[2\] \(segmentation:1\)\.adaptors\[1\]: unknown adaptor op 'conv_7x7'",
    ),
    "unknown aggregator": (
        _set(["cells", 1, "aggregator"], "max"),
        r"^cells\[1\] \(depth:0\)\.aggregator: unknown aggregator 'max'",
    ),
    "unknown task": (_set(["cells", 0, "task"], "edges"), r"^cells\[0\]\.task: unknown task 'edges'"),
    "too few cells": (lambda d: d["cells"].pop(), r"^cells: expected 6 cells \(P=3 x 2 tasks\), got 5"),
    "cells out of order": (
        lambda d: d["cells"].reverse(),
        r"^cells\[0\]: expected cell segmentation:0 here \(p-major order\), got depth:2",
    ),
    "input not visible (later cell)": (
        _set(["cells", 2, "inputs", 0], "depth:0"),
        r"^cells\[2\] \(segmentation:1\)\.inputs\[0\]: 'depth:0' is not visible to cell segmentation:1",
    ),
    "input not visible (same index)": (
        _set(["cells", 3, "inputs", 1], "depth:1"),
        r"^cells\[3\] \(depth:1\)\.inputs\[1\]: 'depth:1' is not visible",
    ),
    "feature out of range": (
        _set(["cells", 0, "inputs", 0], "feature:3"),
        r"^cells\[0\] \(segmentation:0\)\.inputs\[0\]: 'feature:3' does not exist",
    ),
    "malformed ref": (
        _set(["cells", 0, "inputs", 0], "feature0"),
        r"^cells\[0\] \(segmentation:0\)\.inputs\[0\]: invalid input ref 'feature0'",
    ),
    "three inputs": (
        _set(["cells", 0, "inputs"], ["feature:0"] * 3),
        r"^cells\[0\] \(segmentation:0\)\.inputs: must be a list of two names",
    ),
    "missing aggregator": (_delete(["cells", 4, "aggregator"]), r"^cells\[4\]\.aggregator: missing"),
    "tokens disagree": (_set(["tokens", 7], 0), r"^tokens: disagree with cells at position 7"),
    "tokens too short": (
        lambda d: d["tokens"].pop(),
        r"^tokens: disagree with cells \(29 tokens, cells give 30\)",
    ),
    "bad reward": (_set(["reward"], "high"), r"^reward: must be a finite number"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_invalid_document_has_its_own_message(name):
    edit, pattern = CASES[name]
    doc = copy.deepcopy(BASIC)
    edit(doc)
    with pytest.raises(GenotypeError, match=pattern):
        parse_genotype(doc)


def test_messages_are_distinct_and_one_line():
    messages = []
    for edit, _ in CASES.values():
        doc = copy.deepcopy(BASIC)
        edit(doc)
        try:
            parse_genotype(doc)
        except GenotypeError as e:
            messages.append(str(e))
    assert len(set(messages)) == len(CASES)
    assert all("\n" not in m for m in messages)


def test_version_1_and_version_2_documents_both_validate(tmp_path):
    v1 = copy.deepcopy(BASIC)
    assert v1["version"] == 1 and "recommended" not in v1
    answer = {"verdict": "use basic: +0.020 [+0.010, +0.030] over Joint on 5 fresh seeds", "confirmed": True}
    v2 = basic_genotype(SPACE).to_json(reward=0.5, recommended=True, answer=answer)
    assert v2["version"] == 2 and v2["recommended"] is True and v2["answer"] == answer
    unanswered = basic_genotype(SPACE).to_json(recommended=False)
    assert unanswered["version"] == 2 and unanswered["answer"] is None
    for doc in (v1, v2, unanswered):
        assert parse_genotype(doc) == basic_genotype(SPACE)
        f = tmp_path / f"v{doc['version']}.json"
        f.write_text(json.dumps(doc))
        assert runner.invoke(app, ["validate", str(f)]).exit_code == 0


def test_tokens_are_optional_and_basic_is_valid():
    doc = copy.deepcopy(BASIC)
    del doc["tokens"]
    assert parse_genotype(doc) == basic_genotype(SPACE)


def test_file_errors(tmp_path):
    with pytest.raises(GenotypeError, match="cannot read file"):
        load_genotype_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GenotypeError, match="invalid JSON at line 1"):
        load_genotype_file(bad)
    arr = tmp_path / "arr.json"
    arr.write_text("[]")
    with pytest.raises(GenotypeError, match="document: must be a JSON object"):
        load_genotype_file(arr)


runner = CliRunner()


def test_cli_validate_accepts_basic_and_rejects_each_case(tmp_path):
    good = tmp_path / "basic.json"
    good.write_text(json.dumps(BASIC))
    res = runner.invoke(app, ["validate", str(good)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("ok: ") and res.output.count("\n") == 1
    for i, (name, (edit, pattern)) in enumerate(CASES.items()):
        doc = copy.deepcopy(BASIC)
        edit(doc)
        f = tmp_path / f"case{i}.json"
        f.write_text(json.dumps(doc))
        res = runner.invoke(app, ["validate", str(f)])
        assert res.exit_code == 2, name
        line = res.output.strip()
        assert line.count("\n") == 0 and line.startswith(f"error: {f}: "), (name, line)
        assert re.match(pattern, line[len(f"error: {f}: ") :]), (name, line)
        assert "Traceback" not in res.output


def test_cli_space_reports_tokens_and_exact_count():
    res = runner.invoke(app, ["space", "--tasks", "segmentation", "depth", "--inputs", "4"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    space = SearchSpace(4, ("segmentation", "depth"))
    assert doc["num_tokens"] == 40 and len(doc["token_layout"]) == 40
    assert doc["num_genotypes"] == space.num_genotypes()
    assert doc["token_layout"][25]["choices"] == [
        "feature:0",
        "feature:1",
        "feature:2",
        "feature:3",
        "segmentation:0",
        "depth:0",
        "segmentation:1",
        "depth:1",
    ]


def test_cli_space_basic_round_trips_through_validate(tmp_path):
    res = runner.invoke(app, ["space", "--tasks", "a,b,c", "--inputs", "2", "--basic"])
    assert res.exit_code == 0
    f = tmp_path / "b.json"
    f.write_text(res.output)
    assert runner.invoke(app, ["validate", str(f)]).exit_code == 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["space", "--inputs", "0"], "error: --inputs"),
        (["space", "--tasks", "a", "a"], "error: --tasks"),
        (["space", "--inputs", "2", "stray"], "unexpected argument"),
    ],
)
def test_cli_space_bad_arguments(args, needle):
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and needle in res.output
