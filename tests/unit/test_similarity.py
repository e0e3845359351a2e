"""Sentence similarity: CoSENT, correlations, pair reading, bi-encoder / zero-shot / cross-encoder runs, `embed`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import tiny_config
from tests.task_data import write_pairs
from tunelab.errors import UserError
from tunelab.tasks.similarity import correlations, cosent_loss

COLUMNS = {"task": "similarity", "data.text_column": "sentence1", "data.text_pair_column": "sentence2", "data.label_column": "score"}


def test_cosent_prefers_the_gold_ranking():
    import torch

    labels = torch.tensor([5.0, 3.0, 0.0])
    right, wrong = torch.tensor([0.9, 0.5, 0.1]), torch.tensor([0.1, 0.5, 0.9])
    assert cosent_loss(right, labels, 20.0) < cosent_loss(wrong, labels, 20.0)
    assert cosent_loss(right, torch.tensor([1.0, 1.0, 1.0]), 20.0).item() == pytest.approx(0.0)  # no ordered pairs: log(1)


def test_correlations_known_values():
    assert correlations(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 35.0]))["spearman"] == pytest.approx(1.0)
    assert correlations(np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0]))["pearson"] == pytest.approx(-1.0)
    assert correlations(np.array([1.0, 1.0]), np.array([1.0, 2.0])) == {"spearman": 0.0, "pearson": 0.0}


def test_reading_errors_name_the_setting_or_row(tiny_model, tmp_path):
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    train_file = write_pairs(tmp_path / "train.tsv", 20, 1)
    no_pair = tiny_config(tiny_model, train_file, None, "full", tmp_path, task="similarity", **{"data.text_column": "sentence1",
                                                                                                    "data.label_column": "score"})
    with pytest.raises(UserError, match="data.text_pair_column: similarity compares two texts"):
        train(no_pair, RunStore(tmp_path / "runs"))
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence1\tsentence2\tscore\na\tb\t1\nc\td\thigh\n")
    with pytest.raises(UserError, match=r"bad\.tsv: row 2, field 'score': expected a number"):
        train(tiny_config(tiny_model, bad, None, "full", tmp_path, **COLUMNS), RunStore(tmp_path / "runs"))


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    return write_pairs(folder / "train.tsv", 80, 1), write_pairs(folder / "dev.tsv", 30, 2), folder


def test_bi_encoder_full_reloads_and_embeds(tiny_model, pair_files, tmp_path):
    from tunelab.cli import main
    from tunelab.pipeline import predict, train
    from tunelab.registry import RunStore

    train_file, dev_file, _ = pair_files
    store = RunStore(tmp_path / "runs")
    run = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, **COLUMNS), store)
    assert run.manifest["metric"] == "spearman" and run.manifest["task_info"]["architecture"] == "bi-encoder"
    assert predict(run.id, str(dev_file), str(tmp_path / "p.jsonl"), store, quiet=True) == 30
    records = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert all(-1.0 <= r["similarity"] <= 1.0 and r["kind"] == "cosine" for r in records)
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat runs\na dog sleeps\nthe cat runs\n")
    assert main(["embed", run.id, "--input", str(texts), "--output", str(tmp_path / "v.npy"), "--store", str(store.root), "--quiet"]) == 0
    vectors = np.load(tmp_path / "v.npy")
    assert vectors.shape == (3, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    first = records[0]  # the vectors agree with the predicted cosine of the same pair
    assert main(["embed", run.id, "--input", str(dev_file), "--text-column", "sentence1", "--output", str(tmp_path / "a.jsonl"),
                 "--store", str(store.root), "--quiet"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert rows[0]["text"] == first["text"] and len(rows[0]["vector"]) == 32


def test_zero_shot_features_trains_nothing_and_cross_encoder_reports_on_the_data_scale(tiny_model, pair_files, tmp_path):
    from tunelab.pipeline import evaluate, train
    from tunelab.registry import RunStore

    train_file, dev_file, _ = pair_files
    store = RunStore(tmp_path / "runs")
    zero = train(tiny_config(tiny_model, train_file, dev_file, "features", tmp_path, **COLUMNS), store)
    assert zero.manifest["trainable_params"] == 0 and zero.manifest["strategy_info"]["zero_shot"]
    assert not list(zero.path.rglob("*.safetensors"))
    cross = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, force=True,
                              **{**COLUMNS, "similarity.architecture": "cross-encoder", "train.learning_rate": 3e-3,
                                 "train.freeze_embeddings": False, "train.num_train_epochs": 8, "train.overfit_patience": 0}), store)
    assert cross.manifest["task_info"]["score_min"] == 0.0 and cross.manifest["task_info"]["score_max"] == 5.0
    metrics = evaluate(cross.id, str(dev_file), store, quiet=True)
    assert metrics["spearman"] > 0.15  # the tiny random model learns a little; the real one is in bench/tasks.py
    import torch

    from tunelab.task_pipeline import load_task_predictor

    predictor = load_task_predictor(cross.path, cross.manifest, store.root)
    rows = predictor.task.read(str(dev_file))[:4]
    batch = predictor.tokenizer([r.text for r in rows], [r.pair for r in rows], padding=True, return_tensors="pt")
    with torch.inference_mode():
        raw = predictor.model(**batch).logits.reshape(-1).numpy()
    # learnt on 0-1 targets, reported back on the data's 0-5 scale
    assert np.allclose(predictor.predict(rows), raw * 5.0, atol=0.05)  # the run predicts in bf16 here


def test_embed_refuses_runs_without_a_bi_encoder(tiny_model, sentiment_files, tmp_path):
    from tunelab.cli import main
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    store = RunStore(tmp_path / "runs")
    run = train(tiny_config(tiny_model, *sentiment_files, "features", tmp_path), store)
    texts = tmp_path / "t.txt"
    texts.write_text("hello\n")
    assert main(["embed", run.id, "--input", str(texts), "--output", str(tmp_path / "v.npy"), "--store", str(store.root)]) == 2
    assert not (tmp_path / "v.npy").exists()
