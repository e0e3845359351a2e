"""The three strategies on the real bundled MiniLM and a slice of SST-2: all well above chance."""

from __future__ import annotations

import csv
import json
import random

import pytest

from tests.conftest import SHARED_DATA
from tunelab.cli import main

SST2 = SHARED_DATA / "sst2"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (SST2 / "train.tsv").is_file(), reason=f"shared data not found at {SST2}"),
]


def _slice(source, target, n, seed=None):
    with open(source, encoding="utf-8") as handle:
        header, *rows = handle.read().splitlines()
    rows = random.Random(seed).sample(rows, n) if seed is not None else rows[:n]
    target.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sst2")
    train = _slice(SST2 / "train.tsv", folder / "train.tsv", 1000, seed=0)
    dev = _slice(SST2 / "dev.tsv", folder / "dev.tsv", 300)
    code = main(["compare", "--train", str(train), "--validation", str(dev), "--text-column", "sentence",
                 "--store", str(folder / "runs"), "--output-dir", str(folder / "compare"), "--quiet"])
    assert code == 0
    return folder, json.loads((folder / "compare" / "compare.json").read_text())


@pytest.mark.parametrize("strategy", ["features", "full", "lora"])
def test_strategy_is_well_above_chance(comparison, strategy):
    _, table = comparison
    row = next(r for r in table["rows"] if r["strategy"] == strategy)
    assert row["accuracy"] >= 0.65, row  # chance is 0.51 on this slice
    assert row["macro_f1"] >= 0.63, row


def test_lora_adapter_is_small_and_full_copy_is_not(comparison):
    _, table = comparison
    rows = {r["strategy"]: r for r in table["rows"]}
    assert rows["lora"]["artifact_mb"] < 1.0 < rows["full"]["artifact_mb"]
    assert rows["lora"]["trainable_params"] < 0.01 * rows["full"]["trainable_params"]


def test_lora_run_predicts_offline_after_reload(comparison, tmp_path, capsys):
    folder, table = comparison
    lora = next(r for r in table["rows"] if r["strategy"] == "lora")["run"]
    texts = folder / "texts.csv"
    with texts.open("w", newline="") as handle:
        csv.writer(handle).writerows([["sentence"], ["a gorgeous , moving film"], ["tedious , clumsy and dull"]])
    out = tmp_path / "p.jsonl"
    assert main(["predict", lora, "--input", str(texts), "--output", str(out), "--store", str(folder / "runs"), "--quiet"]) == 0
    labels = [json.loads(line)["label"] for line in out.read_text().splitlines()]
    assert labels == ["1", "0"]
