"""Distillation: which layers a smaller student keeps, the soft-label loss, and a student run end to end."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import tiny_config
from tunelab import cli
from tunelab.config import load_config
from tunelab.errors import UserError
from tunelab.models import load_classifier, resolve_model
from tunelab.pipeline import train
from tunelab.registry import RunStore
from tunelab.strategies.distill import DistillationTrainer, kept_layers, shrink


def test_kept_layers_are_evenly_spaced_with_the_top_one():
    assert kept_layers(6, 3) == [0, 2, 5]
    assert kept_layers(12, 6) == [0, 2, 4, 7, 9, 11]
    assert kept_layers(6, 2) == [0, 5] and kept_layers(6, 1) == [5]
    with pytest.raises(UserError, match="student_layers"):
        kept_layers(6, 6)


def test_shrink_keeps_the_chosen_layers_and_the_head(tiny_model):
    teacher, _ = load_classifier(resolve_model(str(tiny_model)), ["neg", "pos"])
    student, keep = shrink(teacher, 1)
    assert keep == [1] and student.config.num_hidden_layers == 1 and teacher.config.num_hidden_layers == 2
    assert torch.equal(student.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[1].output.dense.weight)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert student(input_ids=torch.tensor([[101, 2023, 102]])).logits.shape == (1, 2)


def _loss(alpha: float, student_logits, teacher_logits, labels, temperature=2.0):
    trainer = DistillationTrainer.__new__(DistillationTrainer)  # compute_loss needs only these two settings
    trainer.temperature, trainer.alpha = temperature, alpha

    def model(**inputs):
        return SimpleNamespace(logits=student_logits)

    return trainer.compute_loss(model, {"teacher_logits": teacher_logits, "labels": labels, "input_ids": None})


def test_soft_label_loss_is_zero_when_the_student_matches_and_hard_loss_is_cross_entropy():
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    labels = torch.tensor([0, 1])
    assert float(_loss(1.0, logits, logits.clone(), labels)) == pytest.approx(0.0, abs=1e-6)
    assert float(_loss(0.0, logits, -logits, labels)) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)))
    unlabeled = torch.tensor([-100, -100])  # extra texts: soft labels only, no NaN from an empty cross-entropy
    assert float(_loss(0.5, logits, -logits, unlabeled)) > 0


def test_distil_a_run_into_a_one_layer_student(tiny_model, sentiment_files, tmp_path, capsys):
    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    teacher = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, force=True,
                                **{"train.learning_rate": 1e-3}), store)
    unlabeled = tmp_path / "extra.txt"
    unlabeled.write_text("the film was great\nthe meal was awful\n")
    assert cli.main(["distill", "--teacher", teacher.id, "--student-layers", "1", "--unlabeled", str(unlabeled),
                     "--store", str(store.root), "--output-dir", str(store.root / "student"), "--quiet",
                     "train.num_train_epochs=2", "train.per_device_train_batch_size=8"]) == 0
    out = capsys.readouterr().out
    assert "teacher" in out and "student/teacher" in out
    student = store.get("student")
    info = student.manifest["strategy_info"]["distillation"]
    assert student.manifest["strategy"] == "distill" and info["student"]["layers_kept"] == [1]
    assert info["student"]["params"] < info["teacher"]["params"] and info["unlabeled_texts"] == 2
    assert info["teacher"]["latency_ms"] > 0 and info["student"]["latency_ms"] > 0
    assert json.loads((student.path / "model" / "config.json").read_text())["num_hidden_layers"] == 1
    assert student.manifest["data"]["train"]["rows"] == teacher.manifest["data"]["train"]["rows"]  # the teacher's data
    predictions = tmp_path / "p.jsonl"
    assert cli.main(["predict", "student", "--input", str(dev_file), "--output", str(predictions), "--store", str(store.root)]) == 0
    assert len(predictions.read_text().splitlines()) == 24


def test_distillation_settings_and_teachers_are_checked(tiny_model, sentiment_files, tmp_path):
    with pytest.raises(UserError, match="needs a teacher"):
        load_config(None, {"strategy": "distill", "distill.student_layers": 1}).validate()
    with pytest.raises(UserError, match="exactly one of"):
        load_config(None, {"strategy": "distill", "distill.teacher": "x", "distill.student": "default",
                           "distill.student_layers": 1}).validate()
    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    features = train(tiny_config(tiny_model, train_file, dev_file, "features", tmp_path), store)
    assert cli.main(["distill", "--teacher", features.id, "--student-layers", "1", "--store", str(store.root)]) == 2


def test_a_named_student_model_gets_a_fresh_head(tiny_model, sentiment_files, tmp_path):
    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    teacher = train(tiny_config(tiny_model, train_file, dev_file, "lora", tmp_path), store)
    assert cli.main(["distill", "--teacher", teacher.id, "--student", str(tiny_model), "--store", str(store.root),
                     "--output-dir", str(store.root / "named"), "--quiet", "train.num_train_epochs=1"]) == 0
    info = store.get("named").manifest["strategy_info"]["distillation"]
    assert info["student"]["model"] == str(tiny_model) and info["student"]["layers_kept"] is None
    assert info["teacher"]["strategy"] == "lora"
