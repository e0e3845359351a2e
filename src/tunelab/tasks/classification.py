"""Sequence classification: label sets, example loading and checks, tokenisation, metrics, predictions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunelab.config import DataConfig
from tunelab.data import read_table, require_columns, require_texts, shared_texts, stratified_split
from tunelab.errors import UserError


@dataclass
class Examples:
    """Texts (and optional second texts) with integer label ids; labels is None for unlabelled input."""

    texts: list[str]
    pairs: list[str] | None = None
    labels: np.ndarray | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, rows: np.ndarray, source: str | None = None) -> Examples:
        """A subset by row index."""
        return Examples(
            [self.texts[i] for i in rows],
            [self.pairs[i] for i in rows] if self.pairs is not None else None,
            self.labels[rows] if self.labels is not None else None,
            source or self.source,
        )


@dataclass
class ClassificationData:
    """The train/validation (and optional test) splits over one label set."""

    train: Examples
    validation: Examples
    labels: list[str]
    test: Examples | None = None
    warnings: list[str] = field(default_factory=list)
    validation_from_train: bool = False


def label_text(value: Any) -> str:
    """Normalise a label cell: ints, integral floats and strings all become the same string."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value).strip() if value is not None else ""


def ordered_labels(values: list[str]) -> list[str]:
    """The label set, numerically ordered when every label is an integer, else alphabetically."""
    unique = set(values)
    try:
        return sorted(unique, key=int)
    except ValueError:
        return sorted(unique)


def read_examples(
    source: str, data: DataConfig, labels: list[str] | None, split: str, with_labels: bool = True
) -> tuple[Examples, list[str]]:
    """Read one file as Examples; with `labels` given, every label must belong to it."""
    frame = read_table(source, split=split, encoding=data.encoding)
    require_columns(frame, source, {
        "data.text_column": data.text_column,
        "data.text_pair_column": data.text_pair_column,
        "data.label_column": data.label_column if with_labels else None,
    })
    texts = require_texts(frame, source, data.text_column)
    pairs = require_texts(frame, source, data.text_pair_column) if data.text_pair_column else None
    if not with_labels:
        return Examples(texts, pairs, None, source), []
    raw = [label_text(v) for v in frame[data.label_column].tolist()]
    for row, value in enumerate(raw, start=1):
        if value == "" or value.lower() == "nan":
            raise UserError(f"{source}: row {row}, field {data.label_column!r}: missing label")
    labels = labels if labels is not None else ordered_labels(raw)
    index = {label: i for i, label in enumerate(labels)}
    for row, value in enumerate(raw, start=1):
        if value not in index:
            shown = ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
            raise UserError(
                f"{source}: row {row}, field {data.label_column!r}: label {value!r} does not occur in the training data"
                f" (labels: {shown})"
            )
    return Examples(texts, pairs, np.array([index[v] for v in raw], dtype=np.int64), source), labels


def load_data(data: DataConfig, seed: int) -> ClassificationData:
    """Read train (and validation/test, or a seeded stratified split of train) and check them."""
    if not data.train:
        raise UserError("data.train: no training file given; pass --train FILE")
    full_train, labels = read_examples(data.train, data, None, "train")
    if len(labels) < 2:
        raise UserError(
            f"{data.train}: field {data.label_column!r}: only one class ({labels[0]!r}) in the training data;"
            " classification needs at least two"
        )
    warnings = []
    if data.validation:
        train = full_train
        validation, _ = read_examples(data.validation, data, labels, "validation")
    else:
        train_rows, held_rows = stratified_split(full_train.labels.tolist(), data.validation_size, seed)
        train = full_train.select(train_rows)
        validation = full_train.select(held_rows, f"{data.train} (held-out {data.validation_size:.0%})")
    test = read_examples(data.test, data, labels, "test")[0] if data.test else None
    for other in (validation, test):
        if other is None or other.source.startswith(f"{data.train} (held-out"):
            continue
        overlap = shared_texts(train.texts, other.texts)
        if overlap:
            warnings.append(
                f"{other.source}: {len(overlap)} of {len(other)} texts also occur in {data.train}"
                f" (first at row {overlap[0]}); scores on it will be optimistic"
            )
    missing = sorted(set(range(len(labels))) - set(train.labels.tolist()))
    if missing:
        warnings.append(f"{data.train}: after the validation split, no training example of {', '.join(labels[i] for i in missing)}")
    return ClassificationData(train, validation, labels, test, warnings, validation_from_train=not data.validation)


def tokenize(tokenizer: Any, examples: Examples, max_length: int, desc: str = "Tokenising") -> Any:
    """A datasets.Dataset of input ids (unpadded; the collator pads per batch) and labels."""
    import datasets

    columns = {"text": examples.texts}
    if examples.pairs is not None:
        columns["pair"] = examples.pairs
    if examples.labels is not None:
        columns["labels"] = examples.labels.tolist()
    dataset = datasets.Dataset.from_dict(columns)

    def encode(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch["text"], batch.get("pair"), truncation=True, max_length=max_length)

    return dataset.map(encode, batched=True, remove_columns=[c for c in ("text", "pair") if c in columns], desc=desc)


def compute_metrics(gold: np.ndarray, probabilities: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    predicted = probabilities.argmax(axis=1)
    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, labels=ids, zero_division=0)
    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(f1_score(gold, predicted, labels=ids, average="macro", zero_division=0)),
        "n": int(len(gold)),
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, label in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(gold, predicted, labels=ids).tolist(),
        "calibration": calibration(gold, probabilities),
    }


def calibration(gold: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Reliability of the top-class probability: per confidence bin, how often the model is right; and the ECE."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == gold
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            mean_confidence, accuracy = float(confidence[chosen].mean()), float(correct[chosen].mean())
            table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(chosen.sum()),
                          "confidence": mean_confidence, "accuracy": accuracy})
            ece += chosen.mean() * abs(mean_confidence - accuracy)
    return {"bins": table, "ece": float(ece)}


def prediction_records(examples: Examples, probabilities: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    """One JSON-ready record per input: predicted label, its probability and the full distribution."""
    records = []
    for row, (text, probs) in enumerate(zip(examples.texts, probabilities, strict=False), start=1):
        best = int(probs.argmax())
        record = {"row": row, "text": text}
        if examples.pairs is not None:
            record["text_pair"] = examples.pairs[row - 1]
        record.update({
            "label": labels[best],
            "score": round(float(probs[best]), 6),
            "probabilities": {label: round(float(p), 6) for label, p in zip(labels, probs, strict=False)},
        })
        records.append(record)
    return records
