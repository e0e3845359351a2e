"""Full fine-tuning and PEFT (LoRA and friends): the same Trainer, a differently prepared model."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from transformers import TrainerCallback

from tunelab import console
from tunelab.advice import as_records, collapse_finding, overfitting, overfitting_finding
from tunelab.config import PeftSettings, RunConfig
from tunelab.errors import UserError, did_you_mean
from tunelab.models import ModelRef, load_classifier, parameter_counts
from tunelab.strategies import DEFAULT_LEARNING_RATE
from tunelab.strategies.base import FitContext, FitResult
from tunelab.strategies.layerwise import GradualUnfreezing, layerwise_optimizer
from tunelab.tasks.classification import compute_metrics, tokenize
from tunelab.training import build_trainer, latest_checkpoint


def peft_config(settings: PeftSettings, new_modules: list[str], total_steps: int, task_type: str = "SEQ_CLS") -> Any:
    """A peft config of the chosen method; newly initialised modules (the head) are trained and saved."""
    from peft import PeftType, TaskType
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    method = settings.method.upper().replace("-", "_")
    if method not in PeftType.__members__:
        names = [m.lower() for m in PeftType.__members__]
        raise UserError(f"config peft.method: unknown PEFT method {settings.method!r}{did_you_mean(settings.method.lower(), names)}")
    config_class = PEFT_TYPE_TO_CONFIG_MAPPING[PeftType[method]]
    accepted = {f.name for f in dataclasses.fields(config_class)}
    kwargs: dict[str, Any] = {"task_type": TaskType[task_type]}
    for key in ("r", "lora_alpha", "lora_dropout", "target_modules"):
        if key in accepted and getattr(settings, key) is not None:
            kwargs[key] = getattr(settings, key)
    if "total_step" in accepted:  # AdaLoRA schedules its rank budget over the whole run
        kwargs["total_step"] = total_steps
    if "num_virtual_tokens" in accepted:  # prompt-learning methods: peft has no default
        kwargs["num_virtual_tokens"] = 20
    unknown = sorted(set(settings.options) - accepted)
    if unknown:
        raise UserError(f"config peft.options: {config_class.__name__} has no option {unknown[0]!r}{did_you_mean(unknown[0], accepted)}")
    kwargs.update(settings.options)
    if "modules_to_save" in accepted:
        # The classic PEFT bug: a fresh head that is trained but not saved with the adapter.
        kwargs["modules_to_save"] = sorted(set(kwargs.get("modules_to_save") or []) | set(new_modules))
    try:
        return config_class(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"config peft: {config_class.__name__} rejected the settings: {exc}") from None


def new_module_names(missing_keys: set[str]) -> list[str]:
    """Modules whose weights the checkpoint lacked, e.g. {'classifier.weight'} -> ['classifier']."""
    return sorted({key.rsplit(".", 1)[0] for key in missing_keys})


def trainer_metrics(labels: list[str]):
    """compute_metrics for the Trainer: accuracy, macro-F1 and how many classes the model predicts at all."""
    def compute(prediction: Any) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        scores = compute_metrics(prediction.label_ids, probs, labels)
        distinct = len(np.unique(probs.argmax(axis=1)))
        return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"], "distinct_predictions": distinct}

    return compute


class CollapseWatch(TrainerCallback):
    """Warn (once) when an evaluation finds the model predicting a single class."""

    def __init__(self, num_labels: int) -> None:
        self.num_labels = num_labels
        self.findings: list[dict[str, str]] = []

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        finding = collapse_finding(int((metrics or {}).get("eval_distinct_predictions", 2)), self.num_labels, state.epoch or 0)
        if finding and not self.findings:
            console.warn(f"{finding.code}: {finding.message}")
            self.findings.append(as_records([finding])[0])


class OverfitWatch(TrainerCallback):
    """Stop (and say why) when validation falls while the train/validation loss gap widens (train.overfit_patience)."""

    def __init__(self, metric: str, patience: int) -> None:
        self.metric, self.patience = metric, patience
        self.evaluations: list[tuple[float, float, float]] = []
        self.findings: list[dict[str, str]] = []
        self._seen_logs = 0

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        metrics = metrics or {}
        losses = [entry["loss"] for entry in state.log_history[self._seen_logs:] if "loss" in entry]
        self._seen_logs = len(state.log_history)
        if not losses or f"eval_{self.metric}" not in metrics or "eval_loss" not in metrics:
            return
        self.evaluations.append((metrics[f"eval_{self.metric}"], metrics["eval_loss"], sum(losses) / len(losses)))
        if overfitting(self.evaluations, self.patience):
            finding = overfitting_finding(self.evaluations, state.epoch or 0, self.patience)
            console.warn(f"{finding.code}: {finding.message}")
            self.findings.append(as_records([finding])[0])
            control.should_training_stop = True


def prepare_model(config: RunConfig, ref: ModelRef, labels: list[str], strategy: str, total_steps: int) -> tuple[Any, set[str]]:
    """The classifier as `strategy` trains it (attention kernel, frozen embeddings, PEFT wrapper); also its new keys."""
    model, missing = load_classifier(ref, labels, attn_implementation=config.model.attn_implementation)
    if config.train.freeze_embeddings and strategy == "full":
        # Its gradient is dense and its AdamW update a third of MiniLM's optimizer work (bench/speed.py).
        model.get_input_embeddings().weight.requires_grad_(False)
    if strategy == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, peft_config(config.peft, new_module_names(missing), total_steps))
    return model, missing


def fit(ctx: FitContext) -> FitResult:
    """Train with the Trainer (best epoch kept), then save weights (full) or adapter + head (lora)."""
    config, data = ctx.config, ctx.data
    steps_per_epoch = math.ceil(len(data.train) / (config.train.per_device_train_batch_size * config.train.gradient_accumulation_steps))
    total_steps = config.train.max_steps if config.train.max_steps > 0 else math.ceil(steps_per_epoch * config.train.num_train_epochs)
    model, missing = prepare_model(config, ctx.model_ref, data.labels, config.strategy, total_steps)
    console.info(f"new, randomly initialised: {', '.join(new_module_names(missing)) or 'nothing'} (trained from scratch)")
    trainable, total = parameter_counts(model)
    num_layers = model.config.num_hidden_layers
    unfreezing = GradualUnfreezing(model, num_layers, config.train.num_train_epochs) if config.train.gradual_unfreezing else None
    max_length = config.model.max_length
    train_set = tokenize(ctx.tokenizer, data.train, max_length, "Tokenising train")
    eval_set = tokenize(ctx.tokenizer, data.validation, max_length, "Tokenising validation")
    # Evaluation order does not change a metric; sorted by length, its batches carry little padding.
    eval_set = eval_set.select(np.argsort([-len(ids) for ids in eval_set["input_ids"]], kind="stable"))
    learning_rate = config.train.learning_rate or DEFAULT_LEARNING_RATE[config.strategy]
    trainer = build_trainer(config, model, ctx.tokenizer, train_set, eval_set, ctx.checkpoints,
                            learning_rate, trainer_metrics(data.labels),
                            ddp_find_unused_parameters=False)  # a classifier uses every weight that trains
    watch = CollapseWatch(len(data.labels))
    trainer.add_callback(watch)
    overfit = OverfitWatch(config.train.metric_for_best_model, config.train.overfit_patience)
    trainer.add_callback(overfit)
    if config.train.layerwise_lr_decay or unfreezing:
        trainer.optimizer = layerwise_optimizer(trainer, num_layers, config.train.layerwise_lr_decay)
    if unfreezing:
        trainer.add_callback(unfreezing)
    checkpoint = latest_checkpoint(ctx.checkpoints) if ctx.resume else None
    if checkpoint is not None:
        console.info(f"resuming from {checkpoint.name} (optimizer, scheduler, RNG and data position restored)")
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    artifact = "adapter" if config.strategy == "lora" else "model"
    if trainer.is_world_process_zero():  # the other ranks of a multi-process launch hold the same weights
        trainer.model.save_pretrained(ctx.run_dir / artifact)
        ctx.tokenizer.save_pretrained(ctx.run_dir / ("model" if artifact == "model" else "tokenizer"))
    info = {"learning_rate": learning_rate, "total_steps": trainer.state.global_step, "resumed_from": checkpoint and checkpoint.name,
            "best_checkpoint_epoch": _best_epoch(trainer.state), "advice": watch.findings + overfit.findings}
    if config.strategy == "lora":
        info["peft_method"] = config.peft.method
    if config.train.layerwise_lr_decay:
        info["layerwise_lr_decay"] = config.train.layerwise_lr_decay
    if unfreezing:
        info["gradual_unfreezing_lowest_depth_per_epoch"] = unfreezing.lowest_trained
    return FitResult(trainable, total, artifact, history=list(trainer.state.log_history), info=info, model=trainer.model)


def _best_epoch(state: Any) -> float | None:
    best = state.best_model_checkpoint
    if not best:
        return None
    step = int(best.rstrip("/").rsplit("-", 1)[-1])
    return next((entry["epoch"] for entry in state.log_history if entry.get("step") == step and "eval_loss" in entry), None)
