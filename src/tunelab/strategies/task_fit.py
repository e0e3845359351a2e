"""features / full / lora for every task head beyond single-label classification, through the Trainer.

`features` here is the frozen encoder with only the task's new head trained (a linear layer per
token for NER, a span head for QA); the encoder's weights are never touched, so the run stores only
the head. For a bi-encoder the zero-shot cosine of the pre-trained encoder is the `features` run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from tunelab import console
from tunelab.models import parameter_counts
from tunelab.strategies.base import FitContext, FitResult
from tunelab.strategies.finetune import OverfitWatch, _best_epoch, new_module_names, peft_config
from tunelab.tasks.base import Task
from tunelab.training import build_trainer, latest_checkpoint

HEAD_LEARNING_RATE = 1e-3  # only a freshly initialised head trains: a large step is safe and needed
HEAD_FILE = "head.safetensors"


def prepare(task: Task, ctx: FitContext, total_steps: int) -> tuple[Any, list[str]]:
    """The task's model as the strategy trains it: everything, a PEFT adapter, or only the new head."""
    config = ctx.config
    model, missing = task.load_model(ctx.model_ref.path, ctx.data.info, ctx.data.labels)
    new = new_module_names(missing)
    strategy = config.strategy
    if strategy == "features":
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(any(name == m or name.startswith(f"{m}.") for m in new))
    elif strategy == "full" and config.train.freeze_embeddings:
        task.peft_target(model).get_input_embeddings().weight.requires_grad_(False)
    elif strategy == "lora":
        from peft import get_peft_model

        settings = peft_config(config.peft, new, total_steps, task.peft_task_type)
        model = task.with_peft_target(model, get_peft_model(task.peft_target(model), settings))
    return model, new


def save_head(model: Any, folder: Path) -> int:
    """Write the trainable (head) tensors of a frozen-encoder model; returns their parameter count."""
    from safetensors.torch import save_file

    tensors = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / HEAD_FILE))
    return sum(t.numel() for t in tensors.values())


def load_head(model: Any, folder: Path) -> Any:
    """Put saved head tensors into a freshly loaded base model (every tensor must find its place)."""
    from safetensors.torch import load_file

    missing, unexpected = model.load_state_dict(load_file(str(folder / HEAD_FILE)), strict=False)
    if unexpected:
        raise ValueError(f"{folder / HEAD_FILE}: tensors {unexpected[:3]} do not belong to this model")
    return model


def fit(ctx: FitContext, task: Task) -> FitResult:
    """Train the task's model with the Trainer (best epoch kept) and save model, adapter or head."""
    config, data = ctx.config, ctx.data
    if task.trains_nothing(config.strategy):
        ctx.tokenizer.save_pretrained(ctx.run_dir / "tokenizer")
        model, _ = task.load_model(ctx.model_ref.path, data.info, data.labels)
        return FitResult(0, parameter_counts(model)[1], "tokenizer", info={"zero_shot": True}, model=model)
    train_set = task.encode(ctx.tokenizer, data.train, data.info, data.labels)
    eval_set = task.encode(ctx.tokenizer, data.validation, data.info, data.labels)
    batch = config.train.per_device_train_batch_size * config.train.gradient_accumulation_steps
    epochs = config.train.num_train_epochs
    total_steps = config.train.max_steps if config.train.max_steps > 0 else math.ceil(len(train_set) / batch * epochs)
    model, new = prepare(task, ctx, total_steps)
    console.info(f"new, randomly initialised: {', '.join(new) or 'nothing'}; {len(train_set)} training windows")
    trainable, total = parameter_counts(model)
    learning_rate = config.train.learning_rate or HEAD_LEARNING_RATE
    trainer = build_trainer(config, model, ctx.tokenizer, train_set, eval_set, ctx.checkpoints, learning_rate,
                            task.trainer_metrics(ctx.tokenizer, data.validation, eval_set, data.info, data.labels),
                            data_collator=task.collator(ctx.tokenizer), remove_unused_columns=False,
                            ddp_find_unused_parameters=False)
    overfit = OverfitWatch(config.train.metric_for_best_model, config.train.overfit_patience)
    trainer.add_callback(overfit)
    checkpoint = latest_checkpoint(ctx.checkpoints) if ctx.resume else None
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    artifact = {"full": "model", "lora": "adapter", "features": "head"}[config.strategy]
    if trainer.is_world_process_zero():
        if artifact == "head":
            trainable = save_head(trainer.model, ctx.run_dir / "head")
        else:
            task.save(trainer.model, ctx.run_dir / artifact)
        ctx.tokenizer.save_pretrained(ctx.run_dir / ("model" if artifact == "model" else "tokenizer"))
    info = {"learning_rate": learning_rate, "total_steps": trainer.state.global_step, "training_windows": len(train_set),
            "resumed_from": checkpoint and checkpoint.name, "best_checkpoint_epoch": _best_epoch(trainer.state),
            "advice": overfit.findings}
    return FitResult(trainable, total, artifact, history=list(trainer.state.log_history), info=info, model=trainer.model)
