"""Full fine-tuning and PEFT (LoRA and friends): the same Trainer, a differently prepared model."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from transformers import TrainerCallback

from tunelab import console
from tunelab.advice import as_records, collapse_finding
from tunelab.config import PeftSettings
from tunelab.errors import UserError, did_you_mean
from tunelab.models import load_classifier, parameter_counts
from tunelab.strategies import DEFAULT_LEARNING_RATE
from tunelab.strategies.base import FitContext, FitResult
from tunelab.tasks.classification import compute_metrics, tokenize
from tunelab.training import build_trainer


def peft_config(settings: PeftSettings, new_modules: list[str], total_steps: int) -> Any:
    """A peft config of the chosen method; newly initialised modules (the head) are trained and saved."""
    from peft import PeftType, TaskType
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    method = settings.method.upper().replace("-", "_")
    if method not in PeftType.__members__:
        names = [m.lower() for m in PeftType.__members__]
        raise UserError(f"config peft.method: unknown PEFT method {settings.method!r}{did_you_mean(settings.method.lower(), names)}")
    config_class = PEFT_TYPE_TO_CONFIG_MAPPING[PeftType[method]]
    accepted = {f.name for f in dataclasses.fields(config_class)}
    kwargs: dict[str, Any] = {"task_type": TaskType.SEQ_CLS}
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


def _trainer_metrics(labels: list[str]):
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


def fit(ctx: FitContext) -> FitResult:
    """Train with the Trainer (best epoch kept), then save weights (full) or adapter + head (lora)."""
    config, data = ctx.config, ctx.data
    model, missing = load_classifier(ctx.model_ref, data.labels)
    console.info(f"new, randomly initialised: {', '.join(new_module_names(missing)) or 'nothing'} (trained from scratch)")
    steps_per_epoch = math.ceil(len(data.train) / (config.train.per_device_train_batch_size * config.train.gradient_accumulation_steps))
    total_steps = config.train.max_steps if config.train.max_steps > 0 else math.ceil(steps_per_epoch * config.train.num_train_epochs)
    if config.strategy == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, peft_config(config.peft, new_module_names(missing), total_steps))
    trainable, total = parameter_counts(model)
    max_length = config.model.max_length
    train_set = tokenize(ctx.tokenizer, data.train, max_length, "Tokenising train")
    eval_set = tokenize(ctx.tokenizer, data.validation, max_length, "Tokenising validation")
    learning_rate = config.train.learning_rate or DEFAULT_LEARNING_RATE[config.strategy]
    trainer = build_trainer(config, model, ctx.tokenizer, train_set, eval_set, ctx.scratch / "checkpoints",
                            learning_rate, _trainer_metrics(data.labels))
    watch = CollapseWatch(len(data.labels))
    trainer.add_callback(watch)
    trainer.train()
    artifact = "adapter" if config.strategy == "lora" else "model"
    trainer.model.save_pretrained(ctx.run_dir / artifact)
    ctx.tokenizer.save_pretrained(ctx.run_dir / ("model" if artifact == "model" else "tokenizer"))
    info = {"learning_rate": learning_rate, "total_steps": trainer.state.global_step,
            "best_checkpoint_epoch": _best_epoch(trainer.state), "advice": watch.findings}
    if config.strategy == "lora":
        info["peft_method"] = config.peft.method
    return FitResult(trainable, total, artifact, history=list(trainer.state.log_history), info=info, model=trainer.model)


def _best_epoch(state: Any) -> float | None:
    best = state.best_model_checkpoint
    if not best:
        return None
    step = int(best.rstrip("/").rsplit("-", 1)[-1])
    return next((entry["epoch"] for entry in state.log_history if entry.get("step") == step and "eval_loss" in entry), None)
