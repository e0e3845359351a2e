"""Each guardrail with a case that triggers it and one that does not."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_rows, tiny_config, write_csv
from tunelab import advice
from tunelab.cli import main
from tunelab.config import load_config


def _codes(findings):
    return [f.code for f in findings]


@pytest.mark.parametrize("values, rows, expected", [
    ({"strategy": "full", "train.learning_rate": 2e-5}, 1000, []),
    ({"strategy": "full", "train.learning_rate": 3e-4}, 1000, ["learning-rate-too-high"]),
    ({"strategy": "lora", "train.learning_rate": 5e-4}, 1000, []),
    ({"strategy": "lora", "train.learning_rate": 1e-2}, 1000, ["learning-rate-too-high"]),
    ({"strategy": "full", "train.learning_rate": 1e-7}, 1000, ["learning-rate-too-low"]),
    ({"strategy": "full", "train.learning_rate": 2e-5, "train.warmup_steps": 0}, 1000, ["no-warmup"]),
    ({"strategy": "full", "train.learning_rate": 2e-5, "train.num_train_epochs": 10}, 500, ["many-epochs"]),
    ({"strategy": "full", "train.learning_rate": 2e-5, "train.num_train_epochs": 10}, 20_000, []),
    ({"strategy": "features", "train.learning_rate": 1.0}, 100, []),
    ({"strategy": "adapt", "train.learning_rate": 3e-3}, 100, ["learning-rate-too-high"]),
    ({"strategy": "adapt", "adapt.lora": True, "train.learning_rate": 3e-3}, 100, []),
])
def test_hyperparameter_checks(values, rows, expected):
    assert _codes(advice.check_hyperparameters(load_config(None, values), rows)) == expected


def test_model_size_check():
    assert _codes(advice.check_model_size(400_000_000, 1_000, "full")) == ["oversized-model"]
    assert advice.check_model_size(22_000_000, 1_000, "full") == []
    assert advice.check_model_size(400_000_000, 50_000, "full") == []


def _bpe_tokenizer(folder, with_pad=True):
    """A byte-level BPE tokenizer trained in-process: a real tokenizer of another family than BERT's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<unk>", "<mask>"] + (["<pad>"] if with_pad else [])
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel()
    tokenizer.train_from_iterator([t for t, _ in make_rows(200, 0)], trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                      mask_token="<mask>", pad_token="<pad>" if with_pad else None)
    wrapped.save_pretrained(folder)
    return wrapped


def test_tokenizer_from_another_family_is_an_error(tiny_model, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    model_config = AutoConfig.from_pretrained(tiny_model)
    assert advice.check_tokenizer(AutoTokenizer.from_pretrained(tiny_model), model_config) == []
    findings = advice.check_tokenizer(_bpe_tokenizer(tmp_path / "bpe"), model_config)
    assert _codes(findings) == ["tokenizer-family-mismatch"]
    assert "bert (WordPiece sub-words) but the tokenizer is BPE" in findings[0].message
    assert "special-tokens-missing" in _codes(advice.check_tokenizer(_bpe_tokenizer(tmp_path / "nopad", with_pad=False), model_config))


def test_tokenizer_larger_than_the_embedding_matrix_is_an_error(tiny_model):
    from transformers import AutoConfig, AutoTokenizer

    small = AutoConfig.from_pretrained(tiny_model)
    small.vocab_size = 1000
    findings = advice.check_tokenizer(AutoTokenizer.from_pretrained(tiny_model), small)
    assert _codes(findings) == ["tokenizer-vocab-too-large"] and "30522 tokens" in findings[0].message


def test_errors_stop_the_run_unless_forced(tiny_model, sentiment_files, tmp_path, capsys):
    train, dev = sentiment_files
    args = ["train", "--train", str(train), "--validation", str(dev), "--model", str(tiny_model), "--store", str(tmp_path / "runs"),
            "--quiet", "--strategy", "full", "train.learning_rate=1e-3", "model.max_length=32", "train.num_train_epochs=1"]
    assert main(args) == 2
    assert "learning-rate-too-high" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    assert main([*args, "--force", "--output-dir", str(tmp_path / "runs" / "forced")]) == 0
    manifest = json.loads((tmp_path / "runs" / "forced" / "run.json").read_text())
    assert "learning-rate-too-high" in [f["code"] for f in manifest["advice"]]


def test_tokenizer_mismatch_stops_training(tiny_model, sentiment_files, tmp_path, capsys):
    train, dev = sentiment_files
    _bpe_tokenizer(tmp_path / "bpe")
    code = main(["train", "--train", str(train), "--validation", str(dev), "--model", str(tiny_model), "--quiet",
                 "--store", str(tmp_path / "runs"), f"model.tokenizer={tmp_path / 'bpe'}"])
    assert code == 2 and "tokenizer-family-mismatch" in capsys.readouterr().err


def test_collapse_is_detected_on_a_model_that_predicts_one_class(tiny_model, tmp_path):
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    rows = make_rows(64, 5)
    skewed = [(t, "pos") for t, _ in rows] + [(t, "neg") for t, _ in rows[:2]]  # 97% one class
    train_file = write_csv(tmp_path / "skewed.csv", skewed)
    dev_file = write_csv(tmp_path / "dev.csv", make_rows(20, 6))
    config = tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, **{"train.num_train_epochs": 1})
    run = train(config, RunStore(tmp_path / "runs"))
    assert "collapse" in [f["code"] for f in run.manifest["advice"]]


def test_collapse_finding_only_for_a_single_predicted_class():
    assert advice.collapse_finding(1, 3, 1.0).code == "collapse"
    assert advice.collapse_finding(2, 3, 1.0) is None


def test_overfitting_needs_a_falling_metric_and_a_growing_gap():
    from tunelab.advice import overfitting

    # (validation metric, validation loss, mean train loss)
    rising = [(0.70, 0.60, 0.65), (0.80, 0.50, 0.45), (0.85, 0.45, 0.30)]
    overfit = [(0.80, 0.50, 0.45), (0.85, 0.45, 0.30), (0.83, 0.55, 0.20), (0.82, 0.70, 0.10)]
    noisy = [(0.80, 0.50, 0.45), (0.85, 0.45, 0.30), (0.83, 0.40, 0.30), (0.82, 0.38, 0.30)]  # gap shrinks
    assert not overfitting(rising, 2)
    assert overfitting(overfit, 2)
    assert not overfitting(noisy, 2)
    assert not overfitting(overfit, 0) and not overfitting(overfit[:2], 2)


def test_overfit_watch_stops_training_and_says_why():
    from types import SimpleNamespace

    from transformers import TrainerControl

    from tunelab.strategies.finetune import OverfitWatch

    watch, control, state = OverfitWatch("macro_f1", 2), TrainerControl(), SimpleNamespace(log_history=[], epoch=0.0)
    for epoch, (metric, validation_loss, train_loss) in enumerate([(0.8, 0.5, 0.45), (0.85, 0.45, 0.3), (0.83, 0.55, 0.2),
                                                                   (0.82, 0.7, 0.1)], start=1):
        state.log_history.append({"loss": train_loss, "step": epoch})
        state.epoch = float(epoch)
        assert not control.should_training_stop
        watch.on_evaluate(None, state, control, {"eval_macro_f1": metric, "eval_loss": validation_loss})
    assert control.should_training_stop
    assert watch.findings[0]["code"] == "overfitting" and "stopped at epoch 4" in watch.findings[0]["message"]
