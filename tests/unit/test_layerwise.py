"""Layer-wise learning-rate decay and gradual unfreezing: depths, optimizer groups, the unfreezing schedule."""

from __future__ import annotations

import pytest
from transformers import Trainer, TrainingArguments

from tests.conftest import tiny_config
from tunelab.config import load_config
from tunelab.errors import UserError
from tunelab.models import load_classifier, resolve_model
from tunelab.pipeline import train
from tunelab.registry import RunStore
from tunelab.strategies.layerwise import GradualUnfreezing, depth, layerwise_optimizer


def test_depth_orders_embeddings_layers_and_head():
    assert depth("bert.embeddings.word_embeddings.weight", 6) == 0
    assert depth("bert.encoder.layer.0.attention.self.query.weight", 6) == 1
    assert depth("bert.encoder.layer.5.output.dense.bias", 6) == 6
    assert depth("bert.pooler.dense.weight", 6) == depth("classifier.weight", 6) == 7


def test_layerwise_optimizer_scales_each_depth_and_keeps_decay_groups(tiny_model, tmp_path):
    model, _ = load_classifier(resolve_model(str(tiny_model)), ["neg", "pos"])
    trainer = Trainer(model=model, args=TrainingArguments(str(tmp_path), learning_rate=1e-3, weight_decay=0.01,
                                                          report_to="none", use_cpu=True))
    optimizer = layerwise_optimizer(trainer, num_layers=2, decay=0.5)
    by_lr = {round(group["lr"], 8) for group in optimizer.param_groups}
    assert by_lr == {1e-3, 5e-4, 2.5e-4, 1.25e-4}  # head, layer 1, layer 0, embeddings
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, 0.01}  # no decay on biases and norms


def test_gradual_unfreezing_goes_head_first_then_downwards(tiny_model):
    model, _ = load_classifier(resolve_model(str(tiny_model)), ["neg", "pos"])
    schedule = GradualUnfreezing(model, num_layers=2, epochs=3)
    assert [schedule.lowest_depth(stage) for stage in range(3)] == [3, 1, 0]
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(depth(name, 2) == 3 for name in trainable)  # head (and pooler) only at the start
    schedule._apply(2)
    assert all(p.requires_grad for p in model.parameters())


def test_the_optimizer_holds_layers_that_start_frozen(tiny_model, tmp_path):
    model, _ = load_classifier(resolve_model(str(tiny_model)), ["neg", "pos"])
    GradualUnfreezing(model, num_layers=2, epochs=3)  # freezes all but the head
    trainer = Trainer(model=model, args=TrainingArguments(str(tmp_path), report_to="none", use_cpu=True))
    optimizer = layerwise_optimizer(trainer, num_layers=2, decay=None)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    assert {g["lr"] for g in optimizer.param_groups} == {trainer.args.learning_rate}  # no decay: one rate


def test_a_run_with_both_records_them(tiny_model, sentiment_files, tmp_path):
    train_file, dev_file = sentiment_files
    config = tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, force=True, **{
        "train.layerwise_lr_decay": 0.8, "train.gradual_unfreezing": True, "train.learning_rate": 1e-3})
    run = train(config, RunStore(tmp_path / "runs"))
    info = run.manifest["strategy_info"]
    assert info["layerwise_lr_decay"] == 0.8 and info["gradual_unfreezing_lowest_depth_per_epoch"] == [3, 1, 0]


@pytest.mark.parametrize("overrides, message", [
    ({"train.layerwise_lr_decay": 1.5}, "expected a factor"),
    ({"strategy": "lora", "train.gradual_unfreezing": True}, "applies to full fine-tuning"),
])
def test_bad_settings_are_config_errors(overrides, message):
    with pytest.raises(UserError, match=message):
        load_config(None, overrides).validate()


def test_forgetting_probe_compares_base_and_tuned_encoder_under_one_head(tiny_model, sentiment_files, tmp_path):
    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    overrides = {"probe_forgetting": True, "train.learning_rate": 1e-3, "adapt.head_warmup_steps": 20}
    full = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, force=True, **overrides), store)
    report = full.manifest["forgetting"]
    assert report["mlm_head"] == "built" and report["blocks"] > 0
    assert report["mlm_loss_after"] > report["mlm_loss_before"]  # the head was fitted to the base encoder
    assert report["change"] == pytest.approx(report["mlm_loss_after"] / report["mlm_loss_before"] - 1, abs=1e-3)
    features = train(tiny_config(tiny_model, train_file, dev_file, "features", tmp_path, **overrides), store)
    assert "never changes the encoder" in features.manifest["forgetting"]["skipped"]
