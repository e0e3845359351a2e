"""Multi-label classification: any number of labels per row, a sigmoid per label, a threshold tuned on validation."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunelab.errors import UserError
from tunelab.tasks.base import Task, run_batches
from tunelab.tasks.classification import label_text, ordered_labels
from tunelab.tasks.sequence_rows import Row, read_rows, row_error, tokenize_rows

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


def split_labels(cell: Any, separator: str) -> list[str]:
    """A JSON list, or a string of labels joined by `separator`; empty means no label."""
    if isinstance(cell, (list, tuple, np.ndarray)):
        values = [label_text(v) for v in cell]
    elif cell is None or (isinstance(cell, float) and cell != cell):
        values = []
    else:
        values = [v.strip() for v in str(cell).split(separator)]
    return [v for v in dict.fromkeys(values) if v]


def multi_label_metrics(gold: np.ndarray, probabilities: np.ndarray, labels: list[str], threshold: float) -> dict[str, Any]:
    """Micro/macro F1, precision, recall, exact-set accuracy and per-label scores at `threshold`."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    predicted = (probabilities >= threshold).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, average=None, zero_division=0)
    micro = precision_recall_fscore_support(gold, predicted, average="micro", zero_division=0)
    return {
        "micro_f1": float(micro[2]), "micro_precision": float(micro[0]), "micro_recall": float(micro[1]),
        "macro_f1": float(f1_score(gold, predicted, average="macro", zero_division=0)),
        "subset_accuracy": float((predicted == gold).all(axis=1).mean()), "threshold": float(threshold), "n": int(len(gold)),
        "per_class": {label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                              "support": int(support[i])} for i, label in enumerate(labels)},
    }


def tune_threshold(gold: np.ndarray, probabilities: np.ndarray) -> float:
    """The threshold (0.05 steps) with the best micro-F1; ties go to the one closest to 0.5."""
    from sklearn.metrics import f1_score

    scores = [(f1_score(gold, (probabilities >= t).astype(int), average="micro", zero_division=0), -abs(t - 0.5), t) for t in THRESHOLDS]
    return float(max(scores)[2])


class MultiLabel(Task):
    """Classification with a set of labels per row (`classification.problem_type=multi_label`)."""

    name = "multi-label"

    def read(self, source: str, with_labels: bool = True) -> list[Row]:
        rows, cells = read_rows(source, self.config.data, with_labels)
        if with_labels:
            for row, cell in zip(rows, cells, strict=True):
                row.target = split_labels(cell, self.config.classification.label_separator)
        return rows

    def rows_from_inputs(self, texts: list[str], pairs: list[str] | None) -> list[Row]:
        return [Row(t, pairs[i - 1] if pairs else None, None, i) for i, t in enumerate(texts, start=1)]

    def learn(self, train: list[Row], source: str) -> tuple[list[str], dict[str, Any]]:
        labels = ordered_labels([label for row in train for label in row.target])
        if len(labels) < 2:
            raise UserError(f"{source}: field {self.config.data.label_column!r}: fewer than two distinct labels;"
                            f" multi-label classification needs at least two")
        return labels, {}

    def check(self, rows: list[Row], labels: list[str], source: str) -> None:
        known = set(labels)
        for row in rows:
            unknown = [label for label in row.target if label not in known]
            if unknown:
                raise row_error(source, row.row, self.config.data.label_column, f"label {unknown[0]!r} does not occur in the training data")

    def text_of(self, row: Row) -> str:
        return row.text if row.pair is None else f"{row.text} || {row.pair}"

    def load_model(self, path: str, info: dict[str, Any], labels: list[str], new_head: bool = True) -> tuple[Any, set[str]]:
        from transformers import AutoModelForSequenceClassification

        options = {"num_labels": len(labels), "problem_type": "multi_label_classification", "id2label": dict(enumerate(labels)),
                   "label2id": {label: i for i, label in enumerate(labels)}} if new_head else {}
        return self.pretrained(AutoModelForSequenceClassification, path, **options)

    def _matrix(self, rows: list[Row], labels: list[str]) -> np.ndarray:
        index = {label: i for i, label in enumerate(labels)}
        matrix = np.zeros((len(rows), len(labels)), dtype=np.float32)
        for i, row in enumerate(rows):
            matrix[i, [index[label] for label in row.target]] = 1.0
        return matrix

    def encode(self, tokenizer: Any, rows: list[Row], info: dict[str, Any], labels: list[str]) -> Any:
        targets = self._matrix(rows, labels).tolist() if rows and rows[0].target is not None else None
        return tokenize_rows(tokenizer, rows, self.config.model.max_length, targets)

    def trainer_metrics(self, tokenizer: Any, rows: list[Row], encoded: Any, info: dict[str, Any], labels: list[str]):
        def compute(prediction: Any) -> dict[str, float]:
            probabilities = 1.0 / (1.0 + np.exp(-np.asarray(prediction.predictions, dtype=np.float64)))
            scores = multi_label_metrics(prediction.label_ids.astype(int), probabilities, labels, 0.5)
            return {"micro_f1": scores["micro_f1"], "macro_f1": scores["macro_f1"]}

        return compute

    def predict(self, model: Any, tokenizer: Any, rows: list[Row], info: dict[str, Any], labels: list[str],
                batch_size: int = 64, progress: bool = False, precision: str = "fp32") -> np.ndarray:
        encoded = tokenize_rows(tokenizer, rows, self.config.model.max_length, None)
        logits = run_batches(model, [encoded[i] for i in range(len(encoded))], self.collator(tokenizer), batch_size, precision,
                             progress, lambda out, batch: list(out.logits.float().cpu().numpy()))
        return 1.0 / (1.0 + np.exp(-np.array(logits, dtype=np.float64)))

    def _threshold(self, info: dict[str, Any]) -> float:
        return self.config.classification.threshold or info.get("threshold", 0.5)

    def tune(self, predictions: np.ndarray, rows: list[Row], info: dict[str, Any], labels: list[str]) -> dict[str, Any]:
        if self.config.classification.threshold is not None:
            return {"threshold": self.config.classification.threshold}
        return {"threshold": tune_threshold(self._matrix(rows, labels).astype(int), predictions)}

    def score(self, predictions: np.ndarray, rows: list[Row], info: dict[str, Any], labels: list[str]) -> dict[str, Any]:
        return multi_label_metrics(self._matrix(rows, labels).astype(int), predictions, labels, self._threshold(info))

    def records(self, predictions: np.ndarray, rows: list[Row], info: dict[str, Any], labels: list[str]) -> list[dict[str, Any]]:
        threshold = self._threshold(info)
        out = []
        for row, probs in zip(rows, predictions, strict=True):
            record: dict[str, Any] = {"row": row.row, "text": row.text}
            if row.pair is not None:
                record["text_pair"] = row.pair
            record.update({"labels": [label for label, p in zip(labels, probs, strict=True) if p >= threshold],
                           "probabilities": {label: round(float(p), 6) for label, p in zip(labels, probs, strict=True)},
                           "threshold": threshold})
            out.append(record)
        return out
