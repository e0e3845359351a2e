"""Token classification (NER): tags aligned to sub-words, long sentences in overlapping windows, entity spans.

Only a word's first sub-word carries its tag (the rest are ignored by the loss, -100), the
convention the reference NER recipes and seqeval scores assume. A sentence longer than the model's
window is cut into windows sharing `ner.stride` sub-words, so no word is dropped; at prediction each
word takes its tag from the window where it has the most context on both sides.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from tunelab.data.conll import TaggedSentence, normalise_scheme, read_tagged, split_words
from tunelab.data.readers import read_table
from tunelab.errors import UserError
from tunelab.tasks.base import Task, run_batches, softmax


def tag_order(tags: set[str]) -> list[str]:
    """O first, then B-/I- of each entity type, types alphabetically."""
    types = sorted({t[2:] for t in tags if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def encode_windows(tokenizer: Any, sentences: list[list[str]], max_length: int, stride: int) -> Any:
    """Sub-word windows of every sentence, with offsets (to find first sub-words) and the sentence of each window."""
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("token classification needs a fast (Rust) tokenizer for word alignment; this model has none")
    return tokenizer(sentences, is_split_into_words=True, truncation=True, max_length=max_length, stride=stride,
                     return_overflowing_tokens=True, return_offsets_mapping=True)


def first_subwords(word_ids: list[int | None], offsets: list[tuple[int, int]]) -> dict[int, int]:
    """{position: word} for the positions that start a word; a window that begins mid-word does not claim that word."""
    starts: dict[int, int] = {}
    claimed: set[int] = set()
    for position, word in enumerate(word_ids):
        if word is None or word in claimed:
            continue
        claimed.add(word)
        if offsets[position][0] == 0:
            starts[position] = word
    return starts


def align_labels(word_ids: list[int | None], offsets: list[tuple[int, int]], word_tags: list[int]) -> list[int]:
    """Per-position label ids: the word's tag at its first sub-word, -100 everywhere else."""
    labels = [-100] * len(word_ids)
    for position, word in first_subwords(word_ids, offsets).items():
        labels[position] = word_tags[word]
    return labels


def best_windows(windows: list[tuple[list[int | None], list[tuple[int, int]]]]) -> dict[int, tuple[int, int]]:
    """{word: (window, position)}: the window in which each word's first sub-word sits furthest from an edge."""
    best: dict[int, tuple[int, int, int]] = {}
    for w, (word_ids, offsets) in enumerate(windows):
        content = [p for p, word in enumerate(word_ids) if word is not None]
        if not content:
            continue
        for position, word in first_subwords(word_ids, offsets).items():
            context = min(position - content[0], content[-1] - position)
            if word not in best or context > best[word][2]:
                best[word] = (w, position, context)
    return {word: (w, p) for word, (w, p, _) in best.items()}


def entities(tags: list[str], scores: list[float], sentence: TaggedSentence) -> list[dict[str, Any]]:
    """Entity spans from IOB2 word tags: type, words, character offsets (into the text) and mean tag probability."""
    from seqeval.metrics.sequence_labeling import get_entities

    text = sentence.text if sentence.text is not None else " ".join(sentence.tokens)
    spans = sentence.spans or _joined_spans(sentence.tokens)
    found = []
    for kind, first, last in get_entities(tags):
        start, end = spans[first][0], spans[last][1]
        found.append({"type": kind, "text": text[start:end], "start": start, "end": end, "words": [first, last + 1],
                      "score": round(float(np.mean(scores[first:last + 1])), 6)})
    return found


def _joined_spans(tokens: list[str]) -> list[tuple[int, int]]:
    spans, position = [], 0
    for token in tokens:
        spans.append((position, position + len(token)))
        position += len(token) + 1
    return spans


class TokenClassification(Task):
    """Named-entity recognition and other per-word tagging."""

    name = "token-classification"
    peft_task_type = "TOKEN_CLS"

    def read(self, source: str, with_labels: bool = True) -> list[TaggedSentence]:
        ner, data = self.config.ner, self.config.data
        if not with_labels and _is_raw_text(source, ner.tokens_field):
            frame = read_table(source, split="test", encoding=data.encoding)
            if data.text_column not in frame.columns:
                raise UserError(f"{source}: no column {data.text_column!r} (data.text_column) and no {ner.tokens_field!r} lists")
            sentences = [split_words(str(text), row) for row, text in enumerate(frame[data.text_column].tolist(), start=1)]
            empty = next((s.line for s in sentences if not s.tokens), None)
            if empty is not None:
                raise UserError(f"{source}: row {empty}, field {data.text_column!r}: no words in the text")
            return sentences
        sentences = read_tagged(source, ner.token_column, ner.tag_column, ner.tokens_field, ner.tags_field, with_labels, data.encoding)
        if with_labels:
            normalise_scheme(sentences, ner.tag_scheme, source)
        return sentences

    def rows_from_inputs(self, texts: list[str], pairs: list[str] | None) -> list[TaggedSentence]:
        rows = [split_words(text, i) for i, text in enumerate(texts, start=1)]
        empty = next((r.line for r in rows if not r.tokens), None)
        if empty is not None:
            raise UserError(f"inputs: text {empty} has no words")
        return rows

    def learn(self, train: list[TaggedSentence], source: str) -> tuple[list[str], dict[str, Any]]:
        tags = tag_order({t for s in train for t in s.tags})
        if len(tags) < 3:
            raise UserError(f"{source}: no entity tags (only O); token classification needs B-/I- tagged words")
        counts = Counter(t[2:] for s in train for t in s.tags if t.startswith("B-"))
        return tags, {"entities_per_type": dict(sorted(counts.items()))}

    def check(self, rows: list[TaggedSentence], labels: list[str], source: str) -> None:
        known = set(labels)
        for sentence in rows:
            for word, tag in zip(sentence.tokens, sentence.tags, strict=True):
                if tag not in known:
                    raise UserError(f"{source}: sentence at line {sentence.line}, word {word!r}: tag {tag!r} does not occur"
                                    f" in the training data")

    def text_of(self, row: TaggedSentence) -> str:
        return " ".join(row.tokens)

    def load_model(self, path: str, info: dict[str, Any], labels: list[str], new_head: bool = True) -> tuple[Any, set[str]]:
        from transformers import AutoModelForTokenClassification

        options = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                   "label2id": {t: i for i, t in enumerate(labels)}} if new_head else {}
        return self.pretrained(AutoModelForTokenClassification, path, **options)

    def encode(self, tokenizer: Any, rows: list[TaggedSentence], info: dict[str, Any], labels: list[str]) -> Any:
        import datasets

        index = {t: i for i, t in enumerate(labels)}
        encoded = encode_windows(tokenizer, [s.tokens for s in rows], self.config.model.max_length, self.config.ner.stride)
        columns = {k: encoded[k] for k in tokenizer.model_input_names if k in encoded}
        columns["labels"] = [
            align_labels(encoded.word_ids(i), encoded["offset_mapping"][i], [index[t] for t in rows[sample].tags])
            for i, sample in enumerate(encoded["overflow_to_sample_mapping"])]
        return datasets.Dataset.from_dict(columns)

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=8)

    def trainer_metrics(self, tokenizer: Any, rows: list[Any], encoded: Any, info: dict[str, Any], labels: list[str]):
        from seqeval.metrics import f1_score

        def compute(prediction: Any) -> dict[str, float]:
            predicted = prediction.predictions.argmax(-1)
            gold, guess = [], []
            for p_row, g_row in zip(predicted, prediction.label_ids, strict=True):
                keep = g_row != -100
                gold.append([labels[i] for i in g_row[keep]])
                guess.append([labels[i] for i in p_row[keep]])
            return {"f1": float(f1_score(gold, guess, zero_division=0))}  # per window: the run's own scores are per sentence

        return compute

    def predict(self, model: Any, tokenizer: Any, rows: list[TaggedSentence], info: dict[str, Any], labels: list[str],
                batch_size: int = 64, progress: bool = False, precision: str = "fp32") -> list[tuple[list[str], list[float]]]:
        encoded = encode_windows(tokenizer, [s.tokens for s in rows], self.config.model.max_length, self.config.ner.stride)
        features = [{k: encoded[k][i] for k in tokenizer.model_input_names if k in encoded} for i in range(len(encoded["input_ids"]))]
        probabilities = run_batches(model, features, self.collator(tokenizer), batch_size, precision, progress,
                                    lambda out, batch: [softmax(x.float().cpu().numpy()) for x in out.logits])
        windows_of: dict[int, list[int]] = {}
        for window, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            windows_of.setdefault(sample, []).append(window)
        results = []
        for sample, sentence in enumerate(rows):
            windows = windows_of.get(sample, [])
            chosen = best_windows([(encoded.word_ids(w), encoded["offset_mapping"][w]) for w in windows])
            tags, scores = ["O"] * len(sentence.tokens), [1.0] * len(sentence.tokens)  # a word with no sub-word stays O
            for word, (w, position) in chosen.items():
                probs = probabilities[windows[w]][position]
                tags[word], scores[word] = labels[int(probs.argmax())], float(probs.max())
            results.append((_repair(tags), scores))
        return results

    def score(self, predictions: Any, rows: list[TaggedSentence], info: dict[str, Any], labels: list[str]) -> dict[str, Any]:
        from seqeval.metrics import classification_report

        gold = [s.tags for s in rows]
        guess = [tags for tags, _ in predictions]
        report = classification_report(gold, guess, output_dict=True, zero_division=0)
        words = sum(len(g) for g in gold)
        correct = sum(a == b for g, p in zip(gold, guess, strict=True) for a, b in zip(g, p, strict=True))
        overall = report["micro avg"]
        per_type = {k: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]),
                        "support": int(v["support"])} for k, v in report.items() if not k.endswith(" avg")}
        return {"f1": float(overall["f1-score"]), "precision": float(overall["precision"]), "recall": float(overall["recall"]),
                "token_accuracy": correct / max(words, 1), "n": len(rows), "words": words, "per_type": per_type}

    def records(self, predictions: Any, rows: list[TaggedSentence], info: dict[str, Any], labels: list[str]) -> list[dict[str, Any]]:
        out = []
        for row, (sentence, (tags, scores)) in enumerate(zip(rows, predictions, strict=True), start=1):
            record: dict[str, Any] = {"row": row}
            if sentence.text is not None:
                record["text"] = sentence.text
            record.update({"tokens": sentence.tokens, "tags": tags, "entities": entities(tags, scores, sentence)})
            out.append(record)
        return out


def _repair(tags: list[str]) -> list[str]:
    """Predicted tags can open an entity with I-; make it B- so every span is counted once (IOB2)."""
    from tunelab.data.conll import to_iob2

    return to_iob2(tags)[0]


def _is_raw_text(source: str, tokens_field: str) -> bool:
    """A table of texts (CSV/TSV/Parquet, or JSONL without a tokens list) rather than pre-split words."""
    import json
    from pathlib import Path

    suffix = Path(source).suffix.lower()
    if suffix in (".csv", ".tsv", ".parquet", ".pq"):
        return True
    if suffix in (".jsonl", ".ndjson"):
        with open(source, encoding="utf-8", errors="replace") as handle:
            first = next((line for line in handle if line.strip()), "{}")
        try:
            return tokens_field not in json.loads(first)
        except json.JSONDecodeError:
            return False
    return False
