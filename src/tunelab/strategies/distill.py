"""Distillation: a fine-tuned teacher run's soft labels train a smaller student (a normal run).

The student is a named model with a fresh head, or the teacher itself with encoder layers dropped
(evenly spaced, top layer kept: DistilBERT's initialisation). The teacher is frozen and the data
fixed, so its logits are computed once and travel with the batches; the loss is the stock
Hinton et al. mix: alpha * T^2 * KL(student/T || teacher/T) + (1 - alpha) * cross-entropy on gold labels
(unlabelled extra texts contribute the first term only).
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import Any

import numpy as np
from torch import nn
from transformers import Trainer

from tunelab import console
from tunelab.errors import UserError
from tunelab.inference import Predictor
from tunelab.models import load_classifier, parameter_counts, resolve_model
from tunelab.registry import RunStore, folder_size
from tunelab.strategies.base import FitContext, FitResult
from tunelab.tasks.classification import Examples, tokenize
from tunelab.training import build_trainer, latest_checkpoint


def encoder_layers(model: Any) -> tuple[nn.Module, str, nn.ModuleList]:
    """The stack of transformer blocks (the ModuleList as long as config.num_hidden_layers), its parent and attribute."""
    depth, body = model.config.num_hidden_layers, model.base_model
    for name, module in body.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == depth:
            parent, _, attribute = name.rpartition(".")
            return (body.get_submodule(parent) if parent else body), attribute, module
    raise UserError(f"{type(model).__name__}: cannot find its {depth} encoder layers to drop from; name a student model")


def kept_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Evenly spaced teacher layers to keep, always the first and the last (6 -> 3 keeps 0, 2, 5)."""
    if not 0 < student_layers < teacher_layers:
        raise UserError(f"config distill.student_layers: expected 1 to {teacher_layers - 1} for a {teacher_layers}-layer teacher,"
                        f" got {student_layers}")
    if student_layers == 1:
        return [teacher_layers - 1]
    # round() takes halves to even, so 6 -> 3 keeps layer 2 rather than 3, as DistilBERT's every-other-layer.
    return sorted({round(i * (teacher_layers - 1) / (student_layers - 1)) for i in range(student_layers)})


def shrink(teacher: Any, student_layers: int) -> tuple[Any, list[int]]:
    """A copy of the teacher with only `student_layers` of its encoder layers (embeddings and head kept)."""
    student = copy.deepcopy(teacher)
    parent, attribute, layers = encoder_layers(student)
    keep = kept_layers(len(layers), student_layers)
    setattr(parent, attribute, nn.ModuleList([layers[i] for i in keep]))
    student.config.num_hidden_layers = len(keep)
    return student, keep


class DistillationTrainer(Trainer):
    """The Trainer with the soft-label loss; `teacher_logits` ride in each batch."""

    def __init__(self, *args: Any, temperature: float, alpha: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.temperature, self.alpha = temperature, alpha

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
        import torch.nn.functional as F

        teacher, labels = inputs.pop("teacher_logits"), inputs.pop("labels")
        outputs = model(**inputs)
        logits, t = outputs.logits.float(), self.temperature
        soft = F.kl_div(F.log_softmax(logits / t, dim=-1), F.softmax(teacher.float() / t, dim=-1), reduction="batchmean") * t * t
        gold = labels != -100
        hard = F.cross_entropy(logits[gold], labels[gold]) if bool(gold.any()) else logits.sum() * 0.0
        loss = self.alpha * soft + (1 - self.alpha) * hard
        return (loss, outputs) if return_outputs else loss


def latency_ms(predictor: Any, texts: list[str], repeats: int = 1) -> float:
    """Median milliseconds per example at batch size 1 (tokenisation included)."""
    predictor.predict_proba(texts[:4], batch_size=1)  # warm-up
    times = []
    for text in texts * repeats:
        start = time.perf_counter()
        predictor.predict_proba([text], batch_size=1)
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 3)


def _with_teacher_logits(dataset: Any, logits: np.ndarray) -> Any:
    return dataset.add_column("teacher_logits", logits.astype(np.float32).tolist())


def fit(ctx: FitContext) -> FitResult:
    """Distil the teacher run into the student on the training texts (plus unlabelled ones), keep the best epoch."""
    from tunelab.data.corpus import read_corpus
    from tunelab.inference import load_run_predictor
    from tunelab.strategies.finetune import trainer_metrics

    config, data, settings = ctx.config, ctx.data, ctx.config.distill
    store = RunStore(ctx.store_root)
    teacher_run = store.get(settings.teacher)
    if teacher_run.manifest.get("labels") != data.labels:
        raise UserError(f"run {teacher_run.id}: the teacher's labels {teacher_run.manifest.get('labels')} differ from"
                        f" this data's {data.labels}")
    teacher = load_run_predictor(teacher_run, store.root)
    if teacher.head is not None:
        raise UserError(f"run {teacher_run.id}: a {teacher_run.manifest['strategy']} run has no classifier network to"
                        " distil from; use a full or lora teacher")
    teacher.precision = "fp32"  # soft labels from the exact teacher
    if settings.student_layers:
        student, keep = shrink(teacher.model, settings.student_layers)
        student = student.float().train()
        console.info(f"student: the teacher with encoder layers {keep} of {teacher.model.config.num_hidden_layers} kept")
    else:
        student, _ = load_classifier(resolve_model(settings.student, None, store.root), data.labels)
        keep = None
    extra: list[str] = read_corpus(settings.unlabeled, config.data.text_column, config.data.encoding) if settings.unlabeled else []
    if extra and data.train.pairs is not None:
        raise UserError("config distill.unlabeled: extra texts need a second text for a sentence-pair task; not supported")
    train_examples = Examples(list(data.train.texts) + extra, data.train.pairs,
                              np.concatenate([data.train.labels, np.full(len(extra), -100)]), "train + unlabelled")
    console.info(f"teacher {teacher_run.id}: soft labels for {len(train_examples)} training texts ({len(extra)} unlabelled)")
    train_logits = _teacher_logits(teacher, train_examples)
    eval_logits = _teacher_logits(teacher, data.validation)
    max_length = config.model.max_length
    train_set = _with_teacher_logits(tokenize(ctx.tokenizer, train_examples, max_length, "Tokenising train"), train_logits)
    eval_set = _with_teacher_logits(tokenize(ctx.tokenizer, data.validation, max_length, "Tokenising validation"), eval_logits)
    trainable, total = parameter_counts(student)
    trainer = build_trainer(config, student, ctx.tokenizer, train_set, eval_set, ctx.checkpoints, config.train.learning_rate,
                            trainer_metrics(data.labels), trainer_class=DistillationTrainer,
                            trainer_options={"temperature": settings.temperature, "alpha": settings.alpha},
                            remove_unused_columns=False)  # teacher_logits is no forward() argument
    checkpoint = latest_checkpoint(ctx.checkpoints) if ctx.resume else None
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    trainer.model.save_pretrained(ctx.run_dir / "model")
    ctx.tokenizer.save_pretrained(ctx.run_dir / "model")
    sample = list(data.validation.texts[:100])
    teacher.precision = teacher_run.manifest.get("precision", "fp32")  # each predicts as its run will
    student_predictor = Predictor(teacher.manifest | {"precision": config.train.precision}, ctx.tokenizer, trainer.model.eval())
    info = {"teacher": {"run": teacher_run.id, "strategy": teacher_run.manifest["strategy"],
                        "validation": teacher_run.manifest["metrics"]["validation"], "params": parameter_counts(teacher.model)[1],
                        "artifact_bytes": teacher_run.manifest.get("artifact_bytes") or folder_size(teacher_run.path),
                        "latency_ms": latency_ms(teacher, sample)},
            "student": {"layers_kept": keep, "model": settings.student or f"teacher layers {keep}",
                        "params": total, "latency_ms": latency_ms(student_predictor, sample)},
            "temperature": settings.temperature, "alpha": settings.alpha, "unlabeled_texts": len(extra),
            "learning_rate": config.train.learning_rate, "total_steps": trainer.state.global_step}
    return FitResult(trainable, total, "model", history=list(trainer.state.log_history), info={"distillation": info},
                     model=trainer.model)


def _teacher_logits(teacher: Any, examples: Examples) -> np.ndarray:
    probabilities = teacher.predict_proba(examples.texts, examples.pairs)
    return np.log(np.clip(probabilities, 1e-12, 1.0))  # log-probabilities: logits up to a constant, all KD needs
