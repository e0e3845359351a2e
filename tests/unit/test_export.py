"""ONNX export: files, dynamic axes, parity with PyTorch, int8, and the refusal to bless a disagreeing export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import tiny_config
from tunelab import cli
from tunelab.errors import UserError
from tunelab.export import ExportDisagrees, OnnxPredictor, export, export_run, parity_examples
from tunelab.inference import load_run_predictor
from tunelab.pipeline import train
from tunelab.registry import RunStore

pytest.importorskip("onnxruntime")


@pytest.fixture()
def full_run(tiny_model, sentiment_files, tmp_path):
    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    return store, train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, force=True,
                                     **{"train.learning_rate": 1e-3}), store)


def test_fp32_export_reproduces_pytorch_and_int8_is_smaller(full_run, tmp_path):
    store, run = full_run
    predictor = load_run_predictor(run, store.root)
    examples = parity_examples(run, None, 500)
    report = export_run(run, predictor, examples, tmp_path / "onnx", quantize=True)
    fp32, int8 = report["exports"]["fp32"], report["exports"]["int8"]
    assert fp32["ok"] and fp32["max_abs_logit_difference"] < 1e-4 and fp32["agreement"] == 1.0
    assert int8["bytes"] < fp32["bytes"] and (tmp_path / "onnx" / "model.int8.onnx").is_file()
    assert json.loads((tmp_path / "onnx" / "export.json").read_text())["rows_checked"] == len(examples) == 24
    # Dynamic axes: batch sizes and lengths the trace never saw.
    from transformers import AutoTokenizer

    onnx = OnnxPredictor(tmp_path / "onnx" / "model.onnx", AutoTokenizer.from_pretrained(tmp_path / "onnx"),
                         run.manifest["labels"], run.manifest["max_length"])
    texts = ["short", "a much longer sentence than any the exporter traced, with many more tokens in it", "mid length text"]
    predictor.precision = "fp32"
    np.testing.assert_allclose(onnx.predict_proba(texts, batch_size=3), predictor.predict_proba(texts), atol=1e-5)


def test_cli_export_prints_parity_and_writes_into_the_run(full_run, capsys):
    store, run = full_run
    assert cli.main(["export", run.id, "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "model.onnx" in out and "good" in out
    assert json.loads((run.path / "onnx" / "export.json").read_text())["ok"] is True


def test_an_export_that_disagrees_is_refused(full_run, monkeypatch, capsys):
    store, run = full_run
    monkeypatch.setitem(__import__("tunelab.export").export.MAX_LOGIT_DIFFERENCE, "fp32", -1.0)  # nothing can pass
    with pytest.raises(ExportDisagrees, match="disagrees with PyTorch"):
        export(run.id, store)
    assert json.loads((run.path / "onnx" / "export.json").read_text())["ok"] is False
    assert cli.main(["export", run.id, "--store", str(store.root)]) == 1
    assert "DISAGREES" in capsys.readouterr().out


def test_lora_exports_merged(tiny_model, sentiment_files, tmp_path):
    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    run = train(tiny_config(tiny_model, train_file, dev_file, "lora", tmp_path), store)
    report = export(run.id, store)
    assert report["ok"] and report["exports"]["fp32"]["max_abs_logit_difference"] < 1e-4


def test_what_cannot_be_exported_says_why(full_run, tiny_model, sentiment_files, tmp_path):
    store, run = full_run
    train_file, dev_file = sentiment_files
    features = train(tiny_config(tiny_model, train_file, dev_file, "features", tmp_path), store)
    with pytest.raises(UserError, match="export covers full, lora"):
        export(features.id, store)
    with pytest.raises(UserError, match="not found"):
        export(run.id, store, data=str(tmp_path / "missing.csv"))
    dev_file.unlink()  # the run's own validation data is gone
    with pytest.raises(UserError, match="pass --data FILE"):
        export(run.id, store)
