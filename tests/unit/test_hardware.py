"""Precision choice from the hardware, bf16 autocast, and runs that record and reuse their precision."""

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import tiny_config
from tunelab import hardware
from tunelab.config import load_config
from tunelab.errors import UserError
from tunelab.inference import load_run_predictor
from tunelab.pipeline import train
from tunelab.registry import RunStore


def test_explicit_precision_is_kept_and_auto_follows_the_cpu(monkeypatch):
    assert hardware.resolve_precision("fp32") == "fp32" and hardware.resolve_precision("bf16") == "bf16"
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: True)
    assert hardware.resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(hardware, "cpu_supports_bf16", lambda: False)
    assert hardware.resolve_precision("auto", "cpu") == "fp32"


def test_unknown_precision_is_a_config_error():
    with pytest.raises(UserError, match="train.precision"):
        load_config(None, {"train.precision": "fp8"}).validate()


def test_autocast_computes_in_bf16_and_fp32_is_a_no_op():
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with hardware.autocast("bf16", "cpu"):
        assert (a @ b).dtype == torch.bfloat16
    with hardware.autocast("fp32", "cpu"):
        assert (a @ b).dtype == torch.float32
    with hardware.autocast("fp16", "cpu"):  # no fp16 autocast on the CPU: stays fp32
        assert (a @ b).dtype == torch.float32


def test_describe_reports_the_auto_choice():
    info = hardware.describe()
    assert info["auto_precision"] in ("bf16", "fp32") and info["cpu_cores"] >= 1


@pytest.mark.parametrize("strategy", ["full", "features"])
def test_a_bf16_run_records_its_precision_and_predicts_in_it(tiny_model, sentiment_files, tmp_path, strategy):
    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    run = train(tiny_config(tiny_model, train_file, dev_file, strategy, tmp_path, **{"train.precision": "bf16"}), store)
    assert run.manifest["precision"] == "bf16"
    assert yaml.safe_load((run.path / "config.yaml").read_text())["train"]["precision"] == "bf16"
    predictor = load_run_predictor(run, store.root)
    assert predictor.precision == "bf16"
    texts = ["a lovely film", "a dreadful film"]
    in_bf16 = predictor.predict_proba(texts)
    predictor.precision = "fp32"
    in_fp32 = predictor.predict_proba(texts)
    assert np.abs(in_bf16 - in_fp32).max() < 0.05  # the same model, rounded differently
    if strategy == "features":  # bf16 vectors never come back for an fp32 run
        fp32_run = train(tiny_config(tiny_model, train_file, dev_file, strategy, tmp_path, **{"train.precision": "fp32"}), store)
        assert fp32_run.manifest["strategy_info"]["cache_hits"] == 0


def test_auto_precision_is_resolved_in_the_saved_config(tiny_model, sentiment_files, tmp_path):
    train_file, dev_file = sentiment_files
    run = train(tiny_config(tiny_model, train_file, dev_file, "features", tmp_path), RunStore(tmp_path / "runs"))
    assert run.manifest["precision"] == hardware.resolve_precision("auto")


def test_freezing_embeddings_keeps_them_and_trains_the_rest(tiny_model, sentiment_files, tmp_path):
    from safetensors.torch import load_file

    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    run = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, **{"train.freeze_embeddings": True}), store)
    before, after = load_file(tiny_model / "model.safetensors"), load_file(run.path / "model" / "model.safetensors")
    def weight(weights, suffix):
        return next(v for k, v in weights.items() if k.endswith(suffix))

    embeddings, query = "word_embeddings.weight", "layer.0.attention.self.query.weight"
    assert torch.equal(weight(before, embeddings), weight(after, embeddings))
    assert not torch.equal(weight(before, query), weight(after, query))
    assert run.manifest["trainable_params"] == run.manifest["total_params"] - weight(after, embeddings).numel()
