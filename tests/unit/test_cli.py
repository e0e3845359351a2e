"""The CLI as a user drives it: train, predict, evaluate, runs, compare, and one-line errors."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_rows, write_csv
from tunelab.cli import main


def _train_args(tiny_model, train, dev, store, *extra):
    return ["train", "--train", str(train), "--validation", str(dev), "--model", str(tiny_model), "--store", str(store),
            "--quiet", "model.max_length=32", "train.per_device_train_batch_size=8", *extra]


def test_train_predict_evaluate_runs_round_trip(tiny_model, sentiment_files, tmp_path, capsys):
    train, dev = sentiment_files
    store = tmp_path / "runs"
    assert main(_train_args(tiny_model, train, dev, store, "--strategy", "features", "--output-dir", str(store / "toy"))) == 0
    unlabelled = write_csv(tmp_path / "new.csv", [(t,) for t, _ in make_rows(5, 9)], header=("text",))
    out = tmp_path / "out" / "predictions.jsonl"
    assert main(["predict", "toy", "--input", str(unlabelled), "--output", str(out), "--store", str(store), "--quiet"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 5 and records[0]["row"] == 1
    assert records[0]["label"] in ("neg", "pos") and abs(sum(records[0]["probabilities"].values()) - 1) < 1e-4
    capsys.readouterr()
    assert main(["evaluate", "toy", "--data", str(dev), "--store", str(store), "--json", "--quiet"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n"] == 24 and metrics["accuracy"] == pytest.approx(
        json.loads((store / "toy" / "run.json").read_text())["metrics"]["validation"]["accuracy"])
    assert len(list((store / "toy" / "evaluations").glob("*.json"))) == 1
    assert main(["runs", "list", "--store", str(store)]) == 0
    assert "toy" in capsys.readouterr().out
    assert main(["runs", "show", "toy", "--store", str(store)]) == 0
    assert json.loads(capsys.readouterr().out)["strategy"] == "features"
    assert main(["runs", "rm", "toy", "--store", str(store), "--quiet"]) == 0
    assert main(["runs", "list", "--store", str(store)]) == 0
    assert "no runs" in capsys.readouterr().out


def test_compare_writes_one_table_over_the_same_split(tiny_model, tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", make_rows(80, 4))
    store = tmp_path / "runs"
    code = main(["compare", "--train", str(train), "--model", str(tiny_model), "--store", str(store), "--quiet",
                 "--strategies", "features,full,lora", "--output-dir", str(tmp_path / "cmp"),
                 "model.max_length=32", "train.num_train_epochs=1"])
    assert code == 0
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [row["strategy"] for row in table["rows"]] == ["features", "full", "lora"]
    assert table["data"]["validation_rows"] == 8
    for row in table["rows"]:
        assert {"accuracy", "macro_f1", "train_seconds", "trainable_params", "artifact_mb", "peak_rss_mb"} <= set(row)
    rows = {row["strategy"]: row for row in table["rows"]}
    assert rows["lora"]["trainable_params"] < rows["full"]["trainable_params"]
    assert rows["lora"]["artifact_mb"] < rows["full"]["artifact_mb"]
    markdown = (tmp_path / "cmp" / "compare.md").read_text()
    assert markdown.count("\n| ") >= 4 and "macro_f1" in markdown


@pytest.mark.parametrize("args, message", [
    (["train", "--train", "nope.csv"], "nope.csv: file not found"),
    (["train", "--train", "{train}", "--strategy", "fulll"], "did you mean 'full'"),
    (["train", "--train", "{train}", "--text-column", "sentence"], "no column 'sentence'"),
    (["train", "--train", "{train}", "train.learning_rat=1"], "did you mean 'learning_rate'"),
    (["train", "--train", "{train}", "--model", "./no/such/model"], "model ./no/such/model: no such folder"),
    (["compare", "--train", "{train}", "--strategies", "full,lorra"], "unknown value 'lorra' \\(did you mean 'lora'\\?\\)"),
    (["predict", "missing-run", "--input", "{train}", "--output", "x.jsonl"], "run 'missing-run': not found"),
])
def test_user_errors_are_one_line_and_exit_2(sentiment_files, tmp_path, capsys, args, message):
    train, _ = sentiment_files
    args = [a.replace("{train}", str(train)) for a in args] + ["--store", str(tmp_path / "runs")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "runs").exists() or not [p for p in (tmp_path / "runs").iterdir() if "incomplete" in p.name]


def test_seeds_report_mean_and_std_and_flag_degenerate_runs(tiny_model, sentiment_files, tmp_path, capsys):
    train, dev = sentiment_files
    out = tmp_path / "seeds"
    assert main(_train_args(tiny_model, train, dev, tmp_path / "runs", "--strategy", "features", "--seeds", "3",
                            "--output-dir", str(out))) == 0
    summary = json.loads((out / "compare.json").read_text())
    assert [row["seed"] for row in summary["rows"]] == [42, 43, 44]
    group = summary["seed_groups"][0]
    assert group["seeds"] == [42, 43, 44] and group["macro_f1_std"] >= 0 and group["degenerate"] == []
    assert "Over 3 seeds" in (out / "compare.md").read_text()


def test_degenerate_run_is_flagged():
    from tunelab.compare import seed_groups

    rows = [{"run": f"r{i}", "model": "m", "strategy": "full", "seed": i, "accuracy": a, "macro_f1": a, "collapsed": False}
            for i, a in enumerate([0.90, 0.91, 0.52])]
    assert seed_groups(rows)[0]["degenerate"] == ["r2"]
    rows[2]["macro_f1"] = rows[2]["accuracy"] = 0.89
    assert seed_groups(rows)[0]["degenerate"] == []
