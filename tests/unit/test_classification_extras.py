"""Multi-label and regression options of classification: label parsing, metrics, threshold tuning, tiny runs, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import tiny_config
from tests.task_data import write_multi_label, write_pairs, write_regression
from tunelab.errors import UserError
from tunelab.tasks.multi_label import multi_label_metrics, split_labels, tune_threshold
from tunelab.tasks.regression import regression_metrics

LEARN = {"force": True, "train.learning_rate": 3e-3, "train.num_train_epochs": 6, "train.warmup_steps": 0.0,
         "train.freeze_embeddings": False, "train.overfit_patience": 0}


def test_label_cells_split_into_sets():
    assert split_labels("sports, politics,,sports", ",") == ["sports", "politics"]
    assert split_labels(["a", 1, 1.0], ",") == ["a", "1"]
    assert split_labels("", ",") == [] and split_labels(float("nan"), ",") == []


def test_multi_label_metrics_and_threshold():
    gold = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    probabilities = np.array([[0.9, 0.2], [0.7, 0.35], [0.1, 0.4], [0.2, 0.1]])
    at_half = multi_label_metrics(gold, probabilities, ["a", "b"], 0.5)
    assert at_half["micro_precision"] == 1.0 and at_half["micro_recall"] == pytest.approx(0.5)
    assert at_half["subset_accuracy"] == pytest.approx(0.5) and at_half["per_class"]["b"]["recall"] == 0.0
    best = tune_threshold(gold, probabilities)
    assert 0.2 < best <= 0.35  # only there are both of label b's positives found without a false positive
    assert multi_label_metrics(gold, probabilities, ["a", "b"], best)["micro_f1"] == 1.0


def test_regression_metrics_known_values():
    metrics = regression_metrics(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 3.0]))
    assert metrics["mse"] == pytest.approx(2 / 3) and metrics["mae"] == pytest.approx(2 / 3) and metrics["n"] == 3


def test_multi_label_run_tunes_its_threshold_and_predicts_sets(tiny_model, tmp_path):
    from tunelab.pipeline import evaluate, predict, train
    from tunelab.registry import RunStore

    train_file, dev_file = write_multi_label(tmp_path / "train.jsonl", 80, 1), write_multi_label(tmp_path / "dev.jsonl", 30, 2)
    store = RunStore(tmp_path / "runs")
    run = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, **{"classification.problem_type": "multi_label"},
                            **LEARN), store)
    assert run.manifest["task_kind"] == "multi-label" and run.manifest["labels"] == ["action", "animal"]
    threshold = run.manifest["task_info"]["threshold"]
    assert 0.05 <= threshold <= 0.95 and run.manifest["metrics"]["validation"]["threshold"] == threshold
    scores = run.manifest["metrics"]["validation"]
    assert scores["micro_f1"] > 0.6 and scores["subset_accuracy"] > 0.45  # predicting every label: ~0.25 exact sets
    assert evaluate(run.id, str(dev_file), store, quiet=True)["micro_f1"] == pytest.approx(scores["micro_f1"])
    predict(run.id, str(dev_file), str(tmp_path / "p.jsonl"), store, quiet=True)
    record = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert record["labels"] == [k for k, p in record["probabilities"].items() if p >= threshold]


def test_multi_label_unknown_label_names_the_row(tiny_model, tmp_path):
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    train_file = write_multi_label(tmp_path / "train.jsonl", 20, 1)
    dev = tmp_path / "dev.csv"
    dev.write_text('text,label\nhello,animal\nhi,"animal,colour"\n')
    config = tiny_config(tiny_model, train_file, dev, "full", tmp_path, **{"classification.problem_type": "multi_label"})
    with pytest.raises(UserError, match=r"dev\.csv: row 2, field 'label': label 'colour' does not occur"):
        train(config, RunStore(tmp_path / "runs"))


def test_regression_run_reports_on_the_data_scale(tiny_model, tmp_path):
    from tunelab.pipeline import predict, train
    from tunelab.registry import RunStore

    train_file, dev_file = write_regression(tmp_path / "train.csv", 80, 1), write_regression(tmp_path / "dev.csv", 30, 2)
    store = RunStore(tmp_path / "runs")
    run = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, **{"classification.problem_type": "regression"},
                            **LEARN), store)
    info = run.manifest["task_info"]
    targets = [float(line.rsplit(",", 1)[1]) for line in train_file.read_text().splitlines()[1:]]
    assert info["target_mean"] == pytest.approx(np.mean(targets))
    assert run.manifest["metrics"]["validation"]["spearman"] > 0.5
    predict(run.id, str(dev_file), str(tmp_path / "p.jsonl"), store, quiet=True)
    values = [json.loads(line)["value"] for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert max(values) - min(values) > 1.0 and -1 < min(values) and max(values) < 6  # targets span 0-4.5
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nok,1\nnot ok,many\n")
    with pytest.raises(UserError, match=r"bad\.csv: row 2, field 'label': expected a number, got 'many'"):
        train(tiny_config(tiny_model, bad, None, "full", tmp_path, **{"classification.problem_type": "regression"}), store)


def test_cli_task_flag_runs_list_and_compare(tiny_model, tmp_path, capsys):
    from tunelab.cli import main

    train_file, dev_file = write_pairs(tmp_path / "train.tsv", 40, 1), write_pairs(tmp_path / "dev.tsv", 20, 2)
    store = str(tmp_path / "runs")
    common = ["--task", "similarity", "--train", str(train_file), "--validation", str(dev_file), "--model", str(tiny_model),
              "--text-column", "sentence1", "--text-pair-column", "sentence2", "--label-column", "score", "--store", store,
              "--quiet", "train.num_train_epochs=1", "model.max_length=32"]
    assert main(["compare", "--strategies", "features,lora", *common]) == 0
    out = capsys.readouterr().out
    assert "| strategy | model | spearman |" in out
    assert main(["runs", "list", "--store", store]) == 0
    listing = capsys.readouterr().out
    assert listing.count("similarity") >= 2 and "spearman 0." in listing
    run_id = next(line.split()[0] for line in listing.splitlines() if " lora " in line)
    assert main(["evaluate", run_id, "--data", str(dev_file), "--store", store, "--quiet"]) == 0
    assert "(similarity) on" in capsys.readouterr().out
    assert main(["train", "--task", "ner", "--train", str(train_file), "--store", store]) == 2
    assert "unknown task 'ner'" in capsys.readouterr().err


def test_plan_says_it_covers_classification_only(tmp_path, capsys):
    from tunelab.cli import main

    train_file = write_regression(tmp_path / "t.csv", 10, 1)
    assert main(["plan", "--train", str(train_file), "--store", str(tmp_path / "runs"), "classification.problem_type=regression"]) == 2
    assert "plan: profiles and estimates cover single-label classification; for regression" in capsys.readouterr().err
