"""What every task head shares: its data splits, its contract with strategies, and batched inference.

A task owns the model class, tokenisation and alignment, the collator, metrics and the
post-processing of predictions. It knows no strategy: strategies ask it for a model, datasets and
metrics, and decide themselves what trains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.config import HEADLINE_METRIC, RunConfig
from tunelab.data import shared_texts
from tunelab.errors import UserError
from tunelab.hardware import autocast


@dataclass
class TaskData:
    """Checked train/validation (and optional test) rows of one task, and what was learnt from train."""

    train: list[Any]
    validation: list[Any]
    test: list[Any] | None
    labels: list[str]  # classes or entity tags; empty for QA and similarity
    sources: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # e.g. a score range, saved with the run
    validation_from_train: bool = False


class Task:
    """Base of the task heads; subclasses fill in reading, the model, encoding, metrics and records."""

    name = ""
    peft_task_type = "SEQ_CLS"

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.metric = HEADLINE_METRIC[self.name]

    # --- data -------------------------------------------------------------------------------
    def read(self, source: str, with_labels: bool = True) -> list[Any]:
        """Rows of one file, checked row by row."""
        raise NotImplementedError

    def learn(self, train: list[Any], source: str) -> tuple[list[str], dict[str, Any]]:
        """The label set and any statistics a model needs from the training rows."""
        return [], {}

    def check(self, rows: list[Any], labels: list[str], source: str) -> None:
        """Fail when validation/test rows use labels the training data never shows."""

    def text_of(self, row: Any) -> str:
        """The text that identifies a row, for the leakage check."""
        raise NotImplementedError

    def group_of(self, row: Any) -> str:
        """Rows of one group never straddle a train/validation split (QA: all questions on one article)."""
        return self.text_of(row)

    def subgroup_of(self, row: Any) -> str:
        """The finer grouping used when every row falls in one group (QA: one article -> its paragraphs)."""
        return self.group_of(row)

    def load_data(self) -> TaskData:
        """Train, validation (a seeded, grouped hold-out of train when none is given) and test, checked."""
        data = self.config.data
        if not data.train:
            raise UserError("data.train: no training file given; pass --train FILE")
        rows = self.read(data.train)
        labels, info = self.learn(rows, data.train)
        sources = {"train": data.train}
        if data.validation:
            train, validation = rows, self.read(data.validation)
            self.check(validation, labels, data.validation)
            sources["validation"] = data.validation
        else:
            train, validation = grouped_split(rows, [self.group_of(r) for r in rows], data.validation_size, self.config.seed)
            if not validation:
                train, validation = grouped_split(rows, [self.subgroup_of(r) for r in rows], data.validation_size, self.config.seed)
            if not validation:
                raise UserError(f"{data.train}: {len(rows)} rows are too few to hold out a validation split; pass --validation FILE")
            sources["validation"] = f"{data.train} (held-out {data.validation_size:.0%})"
            labels, info = self.learn(train, data.train)
        test = self.read(data.test) if data.test else None
        if test is not None:
            self.check(test, labels, data.test)
            sources["test"] = data.test
        warnings = self.leak_warnings(train, {"validation": validation, "test": test}, sources) if data.validation else []
        return TaskData(train, validation, test, labels, sources, warnings + info.pop("warnings", []), info,
                        validation_from_train=not data.validation)

    def leak_warnings(self, train: list[Any], others: dict[str, list[Any] | None], sources: dict[str, str]) -> list[str]:
        """Warn when validation/test texts also occur in train: their scores would be optimistic."""
        warnings = []
        for split, rows in others.items():
            if not rows:
                continue
            overlap = shared_texts([self.text_of(r) for r in train], [self.text_of(r) for r in rows])
            if overlap:
                warnings.append(f"{sources[split]}: {len(overlap)} of {len(rows)} {split} rows also occur in"
                                f" {sources['train']} (first at row {overlap[0]}); scores on it will be optimistic")
        return warnings

    # --- model ------------------------------------------------------------------------------
    def load_model(self, path: str, info: dict[str, Any], labels: list[str], new_head: bool = True) -> tuple[Any, set[str]]:
        """The task's model from a pre-trained (or saved) folder; also the names of freshly initialised weights."""
        raise NotImplementedError

    def pretrained(self, auto_class: Any, path: str, **options: Any) -> tuple[Any, set[str]]:
        """`auto_class.from_pretrained` with the configured attention kernel; also the freshly initialised weights."""
        if self.config.model.attn_implementation:
            options["attn_implementation"] = self.config.model.attn_implementation
        model, loading = auto_class.from_pretrained(path, output_loading_info=True, **options)
        return model, set(loading.get("missing_keys", ()))

    def trains_nothing(self, strategy: str) -> bool:
        """True where the strategy is a zero-shot baseline for this task (nothing to fit)."""
        return False

    def peft_target(self, model: Any) -> Any:
        """The module a PEFT method wraps (the whole model, except for a bi-encoder's inner encoder)."""
        return model

    def with_peft_target(self, model: Any, wrapped: Any) -> Any:
        """Put the PEFT-wrapped module back in place."""
        return wrapped

    def save(self, model: Any, folder: Path) -> None:
        """Write the trained weights (or adapter) in the library's own format."""
        self.peft_target(model).save_pretrained(folder)

    # --- training ---------------------------------------------------------------------------
    def encode(self, tokenizer: Any, rows: list[Any], info: dict[str, Any], labels: list[str]) -> Any:
        """A datasets.Dataset the model trains (and is evaluated for loss) on."""
        raise NotImplementedError

    def collator(self, tokenizer: Any) -> Any:
        """Pads a batch of encoded rows."""
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)

    def trainer_metrics(self, tokenizer: Any, rows: list[Any], encoded: Any, info: dict[str, Any],
                        labels: list[str]) -> Callable[[Any], dict[str, float]]:
        """compute_metrics for the Trainer's per-epoch evaluation; must return self.metric."""
        raise NotImplementedError

    # --- inference --------------------------------------------------------------------------
    def predict(self, model: Any, tokenizer: Any, rows: list[Any], info: dict[str, Any], labels: list[str],
                batch_size: int = 64, progress: bool = False, precision: str = "fp32") -> Any:
        """Raw predictions for rows (whatever score() and records() read)."""
        raise NotImplementedError

    def score(self, predictions: Any, rows: list[Any], info: dict[str, Any], labels: list[str]) -> dict[str, Any]:
        """Every metric of the task, including self.metric and "n"."""
        raise NotImplementedError

    def headline(self, metrics: dict[str, Any]) -> dict[str, float]:
        """The scalar metrics a run's manifest and `runs list` show."""
        return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def records(self, predictions: Any, rows: list[Any], info: dict[str, Any], labels: list[str]) -> list[dict[str, Any]]:
        """One JSON-ready record per input row."""
        raise NotImplementedError

    def rows_from_inputs(self, texts: list[str], pairs: list[str] | None) -> list[Any]:
        """Rows built from raw request texts (and second texts), for serving."""
        raise NotImplementedError

    def tune(self, predictions: Any, rows: list[Any], info: dict[str, Any], labels: list[str]) -> dict[str, Any]:
        """Settings chosen on validation after training (a multi-label threshold); merged into info."""
        return {}


def grouped_split(rows: list[Any], groups: list[str], size: float, seed: int) -> tuple[list[Any], list[Any]]:
    """A seeded hold-out of about `size` of the rows, whole groups at a time."""
    unique = list(dict.fromkeys(groups))
    rng = np.random.default_rng(seed)
    held_groups = set(rng.permutation(len(unique))[: max(1, round(size * len(unique)))].tolist()) if len(unique) > 1 else set()
    held = {unique[i] for i in held_groups}
    return [r for r, g in zip(rows, groups, strict=True) if g not in held], [r for r, g in zip(rows, groups, strict=True) if g in held]


def run_batches(model: Any, features: Sequence[dict[str, Any]], collator: Any, batch_size: int, precision: str,
                progress: bool, read: Callable[[Any, dict[str, Any]], list[Any]], desc: str = "Predicting") -> list[Any]:
    """Run `model` over encoded features in length-sorted batches; `read(output, batch)` gives one result per row, in input order."""
    import torch
    from tqdm.auto import tqdm

    order = np.argsort([-len(f["input_ids"]) for f in features], kind="stable")
    results: list[Any] = [None] * len(features)
    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode(), autocast(precision, device.type), tqdm(total=len(features), desc=desc, disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collator([features[i] for i in rows]).items()}
            for i, value in zip(rows, read(model(**batch), batch), strict=True):
                results[i] = value
            bar.update(len(rows))
    return results


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax."""
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)
