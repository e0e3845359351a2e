"""Regression: one number per text (or pair), learnt standardised (mean 0, std 1) and reported on the data's scale."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunelab.errors import UserError
from tunelab.tasks.base import Task, run_batches
from tunelab.tasks.sequence_rows import Row, read_rows, row_error, tokenize_rows
from tunelab.tasks.similarity import correlations


def regression_metrics(predicted: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """MSE, RMSE, MAE, Pearson and Spearman."""
    error = predicted - gold
    mse = float(np.mean(error ** 2))
    return {"mse": mse, "rmse": mse ** 0.5, "mae": float(np.mean(np.abs(error))), **correlations(predicted, gold), "n": int(len(gold))}


class Regression(Task):
    """Classification's regression variant (`classification.problem_type=regression`)."""

    name = "regression"

    def read(self, source: str, with_labels: bool = True) -> list[Row]:
        rows, cells = read_rows(source, self.config.data, with_labels)
        if with_labels:
            for row, cell in zip(rows, cells, strict=True):
                try:
                    row.target = float(cell)
                except (TypeError, ValueError):
                    row.target = float("nan")
                if not np.isfinite(row.target):
                    raise row_error(source, row.row, self.config.data.label_column, f"expected a number, got {cell!r}")
        return rows

    def rows_from_inputs(self, texts: list[str], pairs: list[str] | None) -> list[Row]:
        return [Row(t, pairs[i - 1] if pairs else None, None, i) for i, t in enumerate(texts, start=1)]

    def learn(self, train: list[Row], source: str) -> tuple[list[str], dict[str, Any]]:
        values = np.array([r.target for r in train])
        if values.std() == 0:
            raise UserError(f"{source}: field {self.config.data.label_column!r}: every row has the value {values[0]}; nothing to learn")
        return [], {"target_mean": float(values.mean()), "target_std": float(values.std())}

    def text_of(self, row: Row) -> str:
        return row.text if row.pair is None else f"{row.text} || {row.pair}"

    def load_model(self, path: str, info: dict[str, Any], labels: list[str], new_head: bool = True) -> tuple[Any, set[str]]:
        from transformers import AutoModelForSequenceClassification

        options: dict[str, Any] = {"num_labels": 1, "problem_type": "regression"} if new_head else {}
        return self.pretrained(AutoModelForSequenceClassification, path, **options)

    def encode(self, tokenizer: Any, rows: list[Row], info: dict[str, Any], labels: list[str]) -> Any:
        targets = None
        if rows and rows[0].target is not None:
            targets = [(r.target - info["target_mean"]) / info["target_std"] for r in rows]
        return tokenize_rows(tokenizer, rows, self.config.model.max_length, targets)

    def trainer_metrics(self, tokenizer: Any, rows: list[Row], encoded: Any, info: dict[str, Any], labels: list[str]):
        def compute(prediction: Any) -> dict[str, float]:
            scores = regression_metrics(np.asarray(prediction.predictions).reshape(-1), np.asarray(prediction.label_ids).reshape(-1))
            return {"spearman": scores["spearman"], "pearson": scores["pearson"], "mse_standardised": scores["mse"]}

        return compute

    def predict(self, model: Any, tokenizer: Any, rows: list[Row], info: dict[str, Any], labels: list[str],
                batch_size: int = 64, progress: bool = False, precision: str = "fp32") -> np.ndarray:
        encoded = tokenize_rows(tokenizer, rows, self.config.model.max_length, None)
        values = run_batches(model, [encoded[i] for i in range(len(encoded))], self.collator(tokenizer), batch_size, precision,
                             progress, lambda out, batch: list(out.logits.float().reshape(-1).cpu().numpy()))
        return np.array(values, dtype=np.float64) * info["target_std"] + info["target_mean"]

    def score(self, predictions: np.ndarray, rows: list[Row], info: dict[str, Any], labels: list[str]) -> dict[str, Any]:
        gold = np.array([r.target for r in rows])
        metrics = regression_metrics(predictions, gold)
        metrics["scatter"] = {"predicted": [round(float(x), 4) for x in predictions[:2000]], "gold": gold[:2000].tolist()}
        return metrics

    def records(self, predictions: np.ndarray, rows: list[Row], info: dict[str, Any], labels: list[str]) -> list[dict[str, Any]]:
        out = []
        for row, value in zip(rows, predictions, strict=True):
            record: dict[str, Any] = {"row": row.row, "text": row.text}
            if row.pair is not None:
                record["text_pair"] = row.pair
            record["value"] = round(float(value), 6)
            out.append(record)
        return out
