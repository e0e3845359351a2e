"""Sentence similarity: a bi-encoder (each text pooled alone, cosine compared, CoSENT loss) or a cross-encoder.

The bi-encoder is what search and deduplication need: texts are embedded once and compared by a
dot product, so `tunelab embed` writes reusable vectors. Its `features` strategy is the pre-trained
encoder's zero-shot cosine, the baseline fine-tuning must beat. The cross-encoder reads both texts
together (usually more accurate, but every pair costs a forward pass): sequence classification with
one regression output, trained on scores scaled to [0, 1] and reported back on the data's scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tunelab.data import read_table, require_columns, require_texts
from tunelab.embedding import pool
from tunelab.errors import UserError
from tunelab.tasks.base import Task, run_batches


@dataclass
class Pair:
    """Two texts and their gold similarity (None for unlabelled input)."""

    text: str
    pair: str
    score: float | None
    row: int


def cosent_loss(cosine: Any, labels: Any, scale: float) -> Any:
    """CoSENT (Su, 2022): every pair ranked above another by gold score should be ranked above it by cosine."""
    import torch

    scores = cosine * scale
    differences = scores[None, :] - scores[:, None]  # [i, j] = s_j - s_i: penalised where gold says i > j
    differences = differences[labels[:, None] > labels[None, :]]
    return torch.logsumexp(torch.cat([torch.zeros(1, device=cosine.device, dtype=differences.dtype), differences]), dim=0)


def correlations(predicted: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Spearman and Pearson correlation (nan-free: a constant prediction scores 0)."""
    from scipy.stats import pearsonr, spearmanr

    if len(gold) < 2 or np.std(predicted) == 0 or np.std(gold) == 0:
        return {"spearman": 0.0, "pearson": 0.0}
    return {"spearman": float(spearmanr(predicted, gold).statistic), "pearson": float(pearsonr(predicted, gold).statistic)}


def _bi_encoder_class():
    import torch

    class BiEncoder(torch.nn.Module):
        """Two texts through one encoder, mean/CLS pooled; logits are their cosine similarity."""

        def __init__(self, encoder: Any, pooling: str, scale: float) -> None:
            super().__init__()
            self.encoder, self.pooling, self.scale = encoder, pooling, scale
            self.config = encoder.config

        def embed(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            """Pooled sentence vectors."""
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            return pool(hidden, attention_mask, self.pooling)

        def forward(self, input_ids: Any, attention_mask: Any, pair_input_ids: Any, pair_attention_mask: Any,
                    token_type_ids: Any = None, pair_token_type_ids: Any = None, labels: Any = None) -> dict[str, Any]:
            first = self.embed(input_ids, attention_mask, token_type_ids)
            second = self.embed(pair_input_ids, pair_attention_mask, pair_token_type_ids)
            cosine = torch.nn.functional.cosine_similarity(first.float(), second.float(), dim=-1)
            out = {"logits": cosine}
            if labels is not None:
                out["loss"] = cosent_loss(cosine, labels.float(), self.scale)
            return out

    return BiEncoder


class PairCollator:
    """Pads each side of a pair separately (the bi-encoder encodes them apart)."""

    def __init__(self, tokenizer: Any) -> None:
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        first = self.pad([{k: v for k, v in f.items() if not k.startswith("pair_") and k != "labels"} for f in features])
        second = self.pad([{k[5:]: v for k, v in f.items() if k.startswith("pair_")} for f in features])
        batch = {**first, **{f"pair_{k}": v for k, v in second.items()}}
        if "labels" in features[0]:
            import torch

            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.float32)
        return batch


class Similarity(Task):
    """Scored sentence pairs (STS-B 0-5, or binary paraphrase labels)."""

    name = "similarity"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.cross = config.similarity.architecture == "cross-encoder"
        self.peft_task_type = "SEQ_CLS" if self.cross else "FEATURE_EXTRACTION"

    def read(self, source: str, with_labels: bool = True) -> list[Pair]:
        data = self.config.data
        if not data.text_pair_column:
            raise UserError("config data.text_pair_column: similarity compares two texts; pass --text-pair-column NAME")
        frame = read_table(source, encoding=data.encoding)
        require_columns(frame, source, {"data.text_column": data.text_column, "data.text_pair_column": data.text_pair_column,
                                        "data.label_column": data.label_column if with_labels else None})
        texts, pairs = require_texts(frame, source, data.text_column), require_texts(frame, source, data.text_pair_column)
        scores: list[float | None] = [None] * len(texts)
        if with_labels:
            scores = []
            for row, value in enumerate(frame[data.label_column].tolist(), start=1):
                try:
                    score = float(value)
                except (TypeError, ValueError):
                    score = float("nan")
                if not np.isfinite(score):
                    raise UserError(f"{source}: row {row}, field {data.label_column!r}: expected a number (a similarity score),"
                                    f" got {value!r}")
                scores.append(score)
        return [Pair(t, p, s, row) for row, (t, p, s) in enumerate(zip(texts, pairs, scores, strict=True), start=1)]

    def rows_from_inputs(self, texts: list[str], pairs: list[str] | None) -> list[Pair]:
        if pairs is None:
            raise UserError("pairs: similarity compares two texts; give the second texts in pairs")
        return [Pair(t, p, None, i) for i, (t, p) in enumerate(zip(texts, pairs, strict=True), start=1)]

    def learn(self, train: list[Pair], source: str) -> tuple[list[str], dict[str, Any]]:
        scores = np.array([p.score for p in train])
        if scores.min() == scores.max():
            raise UserError(f"{source}: field {self.config.data.label_column!r}: every pair has score {scores[0]}; nothing to learn")
        return [], {"score_min": float(scores.min()), "score_max": float(scores.max()),
                    "architecture": self.config.similarity.architecture}

    def text_of(self, row: Pair) -> str:
        return f"{row.text} || {row.pair}"

    def trains_nothing(self, strategy: str) -> bool:
        return strategy == "features" and not self.cross

    def load_model(self, path: str, info: dict[str, Any], labels: list[str], new_head: bool = True) -> tuple[Any, set[str]]:
        if self.cross:
            from transformers import AutoModelForSequenceClassification

            head = {"num_labels": 1, "problem_type": "regression"} if new_head else {}
            return self.pretrained(AutoModelForSequenceClassification, path, **head)
        from transformers import AutoModel

        encoder, _ = self.pretrained(AutoModel, path)
        return _bi_encoder_class()(encoder, self.config.model.pooling, self.config.similarity.scale), set()

    def peft_target(self, model: Any) -> Any:
        return model if self.cross else model.encoder

    def with_peft_target(self, model: Any, wrapped: Any) -> Any:
        if self.cross:
            return wrapped
        model.encoder = wrapped
        return model

    def _target(self, score: float, info: dict[str, Any]) -> float:
        return (score - info["score_min"]) / (info["score_max"] - info["score_min"])

    def encode(self, tokenizer: Any, rows: list[Pair], info: dict[str, Any], labels: list[str]) -> Any:
        import datasets

        length = self.config.model.max_length
        if self.cross:
            columns = dict(tokenizer([r.text for r in rows], [r.pair for r in rows], truncation=True, max_length=length))
        else:
            first = tokenizer([r.text for r in rows], truncation=True, max_length=length)
            second = tokenizer([r.pair for r in rows], truncation=True, max_length=length)
            columns = {**dict(first), **{f"pair_{k}": v for k, v in second.items()}}
        if rows and rows[0].score is not None:
            columns["labels"] = [self._target(r.score, info) if self.cross else r.score for r in rows]
        return datasets.Dataset.from_dict(columns)

    def collator(self, tokenizer: Any) -> Any:
        return super().collator(tokenizer) if self.cross else PairCollator(tokenizer)

    def trainer_metrics(self, tokenizer: Any, rows: list[Pair], encoded: Any, info: dict[str, Any], labels: list[str]):
        def compute(prediction: Any) -> dict[str, float]:
            predicted = np.asarray(prediction.predictions).reshape(-1)
            return correlations(predicted, np.asarray(prediction.label_ids).reshape(-1))

        return compute

    def predict(self, model: Any, tokenizer: Any, rows: list[Pair], info: dict[str, Any], labels: list[str],
                batch_size: int = 64, progress: bool = False, precision: str = "fp32") -> np.ndarray:
        unlabelled = [Pair(r.text, r.pair, None, r.row) for r in rows]
        encoded = self.encode(tokenizer, unlabelled, info, labels)
        features = [encoded[i] for i in range(len(encoded))]
        values = run_batches(model, features, self.collator(tokenizer), batch_size, precision, progress,
                             lambda out, batch: list(_logits(out).float().reshape(-1).cpu().numpy()))
        scores = np.array(values, dtype=np.float64)
        if self.cross:  # back to the data's own scale
            scores = info["score_min"] + scores * (info["score_max"] - info["score_min"])
        return scores

    def score(self, predictions: np.ndarray, rows: list[Pair], info: dict[str, Any], labels: list[str]) -> dict[str, Any]:
        gold = np.array([r.score for r in rows])
        metrics: dict[str, Any] = {**correlations(predictions, gold), "n": len(rows)}
        if self.cross:
            metrics["mse"] = float(np.mean((predictions - gold) ** 2))
        metrics["scatter"] = {"predicted": [round(float(x), 4) for x in predictions[:2000]], "gold": gold[:2000].tolist()}
        return metrics

    def records(self, predictions: np.ndarray, rows: list[Pair], info: dict[str, Any], labels: list[str]) -> list[dict[str, Any]]:
        kind = "score" if self.cross else "cosine"
        return [{"row": r.row, "text": r.text, "text_pair": r.pair, "similarity": round(float(s), 6), "kind": kind}
                for r, s in zip(rows, predictions, strict=True)]


def _logits(out: Any) -> Any:
    return out["logits"] if isinstance(out, dict) else out.logits
