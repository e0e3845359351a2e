"""Glue from (config, model, datasets) to a transformers.Trainer. No hand-written loop, no launcher."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tunelab.config import RunConfig
from tunelab.hardware import resolve_precision


def training_arguments(config: RunConfig, output_dir: Path, learning_rate: float, **overrides: Any) -> Any:
    """TrainingArguments with tunelab's defaults (warmup, decay, eval each epoch, best checkpoint kept); `overrides` win."""
    from transformers import TrainingArguments

    train = config.train
    precision = resolve_precision(train.precision)
    arguments = dict(
        output_dir=str(output_dir),
        learning_rate=learning_rate,
        num_train_epochs=train.num_train_epochs,
        max_steps=train.max_steps,
        per_device_train_batch_size=train.per_device_train_batch_size,
        per_device_eval_batch_size=train.per_device_eval_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        warmup_steps=train.warmup_steps,
        weight_decay=train.weight_decay,
        lr_scheduler_type=train.lr_scheduler_type,
        max_grad_norm=train.max_grad_norm,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        torch_compile=train.torch_compile,
        eval_strategy="epoch",
        save_strategy="epoch",  # and every train.save_steps (CheckpointEvery), for --resume
        save_only_model=False,  # resuming needs the optimizer, scheduler and RNG states
        save_total_limit=1,  # the best checkpoint is always kept besides the latest
        load_best_model_at_end=True,
        metric_for_best_model=train.metric_for_best_model,
        greater_is_better=True,
        # Batches of similar length waste little compute on padding (dynamic padding does the rest).
        train_sampling_strategy="group_by_length",
        logging_steps=train.logging_steps,
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=config.quiet,
        log_level="error",  # the Trainer would otherwise reset transformers' verbosity to its own
        dataloader_pin_memory=_has_cuda(),
        use_cpu=not _has_cuda(),  # the Trainer refuses bf16 without a GPU unless told it runs on the CPU
    )
    return TrainingArguments(**{**arguments, **overrides})


class CheckpointEvery(TrainerCallback):
    """Save a checkpoint every `steps` optimizer steps as well as each epoch (evaluation stays per epoch)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.steps == 0:
            control.should_save = True


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete Trainer checkpoint under `folder` (trainer_state.json is written last); partial ones are removed."""
    if not folder.is_dir():
        return None
    complete = []
    for checkpoint in folder.glob("checkpoint-*"):
        if (checkpoint / "trainer_state.json").is_file():
            complete.append(checkpoint)
        else:
            shutil.rmtree(checkpoint, ignore_errors=True)  # killed mid-save
    return max(complete, key=lambda c: int(c.name.rsplit("-", 1)[1]), default=None)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def build_trainer(
    config: RunConfig,
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    eval_dataset: Any,
    output_dir: Path,
    learning_rate: float,
    compute_metrics: Callable[[Any], dict[str, float]] | None = None,
    data_collator: Any = None,
    trainer_class: type | None = None,
    trainer_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> Any:
    """A Trainer (or `trainer_class` with `trainer_options`; dynamic padding unless another collator is given)."""
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, PrinterCallback, Trainer

    callbacks: list[Any] = []
    if config.train.save_steps:
        callbacks.append(CheckpointEvery(config.train.save_steps))
    if config.train.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.train.early_stopping_patience))
    trainer = (trainer_class or Trainer)(
        model=model,
        args=training_arguments(config, output_dir, learning_rate, **overrides),
        data_collator=data_collator or DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=callbacks,
        **(trainer_options or {}),
    )
    if config.quiet:  # without progress bars the Trainer prints every log dict instead
        trainer.remove_callback(PrinterCallback)
    return trainer
