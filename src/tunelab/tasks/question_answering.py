"""Extractive question answering: context windows, answer positions from offsets, n-best span search, SQuAD EM/F1.

A context longer than the window is split into windows sharing `qa.doc_stride` tokens. A training
window whose answer is not wholly inside it points at [CLS] (no answer here), as in the reference
recipe. At prediction every window proposes its `qa.n_best` starts and ends; spans inside the
context, in order and at most `qa.max_answer_length` tokens long compete on start + end logit
across all windows of a question. SQuAD v2: "" wins when the [CLS] score beats the best span by
`qa.null_threshold`.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Any

import numpy as np

from tunelab.data.squad import Question, read_questions
from tunelab.errors import UserError
from tunelab.tasks.base import Task, run_batches


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 of the normalised strings (both empty: 1; one empty: 0)."""
    guess, truth = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not guess or not truth:
        return float(guess == truth)
    common = sum((collections.Counter(guess) & collections.Counter(truth)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(guess), common / len(truth)
    return 2 * precision * recall / (precision + recall)


def squad_scores(prediction: str, answers: list[str]) -> tuple[float, float]:
    """(EM, F1), each the maximum over the gold answers; no gold answer means the right answer is ""."""
    golds = answers or [""]
    return max(exact_match(prediction, g) for g in golds), max(token_f1(prediction, g) for g in golds)


def encode_windows(tokenizer: Any, questions: list[Question], max_length: int, stride: int) -> Any:
    """Question + context windows (only the context is cut), with offsets and the question of each window."""
    side = getattr(tokenizer, "padding_side", "right")
    if side != "right":
        raise UserError("question answering expects a tokenizer that pads on the right")
    return tokenizer([q.question for q in questions], [q.context for q in questions], truncation="only_second",
                     max_length=max_length, stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)


def context_offsets(encoded: Any, window: int) -> list[tuple[int, int] | None]:
    """The window's character offsets, None outside the context (question, special tokens)."""
    sequence = encoded.sequence_ids(window)
    return [tuple(o) if sequence[i] == 1 else None for i, o in enumerate(encoded["offset_mapping"][window])]


def answer_positions(offsets: list[tuple[int, int] | None], start_char: int, end_char: int) -> tuple[int, int]:
    """Token start and end of the character span [start_char, end_char) in a window; (0, 0) when not wholly inside."""
    inside = [i for i, o in enumerate(offsets) if o is not None]
    if not inside or offsets[inside[0]][0] > start_char or offsets[inside[-1]][1] < end_char:
        return 0, 0
    start = next(i for i in inside if offsets[i][1] > start_char)
    end = next(i for i in reversed(inside) if offsets[i][0] < end_char)
    return start, end


def best_span(windows: list[tuple[np.ndarray, np.ndarray, list[tuple[int, int] | None]]], context: str, n_best: int,
              max_answer_length: int, null_threshold: float | None) -> dict[str, Any]:
    """The best answer over a question's windows: text, character span, probability among the candidates."""
    candidates: list[tuple[float, int, int]] = []
    null = None
    for start_logits, end_logits, offsets in windows:
        length = len(offsets)
        start_logits, end_logits = start_logits[:length], end_logits[:length]
        cls = float(start_logits[0] + end_logits[0])
        null = cls if null is None else min(null, cls)  # the window most sure that there is an answer decides
        starts = np.argsort(start_logits)[::-1][:n_best]
        ends = np.argsort(end_logits)[::-1][:n_best]
        for s in starts:
            for e in ends:
                if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                candidates.append((float(start_logits[s] + end_logits[e]), offsets[s][0], offsets[e][1]))
    scores = np.array([c[0] for c in candidates] + ([null] if null is not None else []))
    probabilities = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum() if len(scores) else scores
    if not candidates or (null_threshold is not None and null is not None and null > max(c[0] for c in candidates) + null_threshold):
        return {"answer": "", "start": None, "end": None, "score": round(float(probabilities[-1]) if len(scores) else 0.0, 6)}
    best = int(np.argmax([c[0] for c in candidates]))
    _, start, end = candidates[best]
    return {"answer": context[start:end], "start": start, "end": end, "score": round(float(probabilities[best]), 6)}


LENGTH_BUCKETS = ((1, 1, "1 word"), (2, 2, "2 words"), (3, 4, "3-4 words"), (5, 10**9, "5+ words"))


class QuestionAnswering(Task):
    """Extractive QA over SQuAD-style data (v1.1, and v2.0's unanswerable questions)."""

    name = "question-answering"
    peft_task_type = "QUESTION_ANS"

    def read(self, source: str, with_labels: bool = True) -> list[Question]:
        questions = read_questions(source, with_labels, self.config.data.encoding)
        return questions

    def rows_from_inputs(self, texts: list[str], pairs: list[str] | None) -> list[Question]:
        if pairs is None or any(not p.strip() for p in pairs):
            raise UserError("pairs: question answering needs a context (in pairs) for every question (in inputs)")
        return [Question(str(i), text.lstrip(), context) for i, (text, context) in enumerate(zip(texts, pairs, strict=True), start=1)]

    def learn(self, train: list[Question], source: str) -> tuple[list[str], dict[str, Any]]:
        unanswerable = sum(not q.answers for q in train)
        if unanswerable == len(train):
            raise UserError(f"{source}: no question has an answer; extractive QA needs answer spans to learn from")
        return [], {"version_2": unanswerable > 0, "unanswerable_train": unanswerable}

    def text_of(self, row: Question) -> str:
        return f"{row.question} || {row.context}"

    def group_of(self, row: Question) -> str:
        return row.title or row.context  # questions on one article stay on one side of the split

    def subgroup_of(self, row: Question) -> str:
        return row.context  # a single article: its paragraphs are split instead

    def load_model(self, path: str, info: dict[str, Any], labels: list[str], new_head: bool = True) -> tuple[Any, set[str]]:
        from transformers import AutoModelForQuestionAnswering

        return self.pretrained(AutoModelForQuestionAnswering, path)

    def encode(self, tokenizer: Any, rows: list[Question], info: dict[str, Any], labels: list[str]) -> Any:
        import datasets

        encoded = encode_windows(tokenizer, rows, self.config.model.max_length, self.config.qa.doc_stride)
        columns = {k: encoded[k] for k in tokenizer.model_input_names if k in encoded}
        starts, ends = [], []
        for window, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            answers = rows[sample].answers
            if answers:  # train on the first answer, as the reference recipe does
                text, start_char = answers[0]
                start, end = answer_positions(context_offsets(encoded, window), start_char, start_char + len(text))
            else:
                start, end = 0, 0
            starts.append(start), ends.append(end)
        columns.update(start_positions=starts, end_positions=ends)
        return datasets.Dataset.from_dict(columns)

    def trainer_metrics(self, tokenizer: Any, rows: list[Question], encoded: Any, info: dict[str, Any], labels: list[str]):
        windows = encode_windows(tokenizer, rows, self.config.model.max_length, self.config.qa.doc_stride)

        def compute(prediction: Any) -> dict[str, float]:
            start_logits, end_logits = prediction.predictions[:2]
            answers = self._answers(windows, rows, list(start_logits), list(end_logits), info)
            metrics = self.score(answers, rows, info, labels)
            return {"exact_match": metrics["exact_match"], "f1": metrics["f1"]}

        return compute

    def _answers(self, windows: Any, rows: list[Question], start_logits: list[np.ndarray], end_logits: list[np.ndarray],
                 info: dict[str, Any]) -> list[dict[str, Any]]:
        qa = self.config.qa
        by_question: dict[int, list[int]] = collections.defaultdict(list)
        for window, sample in enumerate(windows["overflow_to_sample_mapping"]):
            by_question[sample].append(window)
        threshold = qa.null_threshold if info.get("version_2") else None
        return [best_span([(start_logits[w], end_logits[w], context_offsets(windows, w)) for w in by_question[i]],
                          question.context, qa.n_best, qa.max_answer_length, threshold)
                for i, question in enumerate(rows)]

    def predict(self, model: Any, tokenizer: Any, rows: list[Question], info: dict[str, Any], labels: list[str],
                batch_size: int = 64, progress: bool = False, precision: str = "fp32") -> list[dict[str, Any]]:
        windows = encode_windows(tokenizer, rows, self.config.model.max_length, self.config.qa.doc_stride)
        features = [{k: windows[k][i] for k in tokenizer.model_input_names if k in windows} for i in range(len(windows["input_ids"]))]
        logits = run_batches(model, features, self.collator(tokenizer), batch_size, precision, progress,
                             lambda out, batch: list(zip(out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy(),
                                                         strict=True)))
        return self._answers(windows, rows, [s for s, _ in logits], [e for _, e in logits], info)

    def score(self, predictions: list[dict[str, Any]], rows: list[Question], info: dict[str, Any],
              labels: list[str]) -> dict[str, Any]:
        pairs = [squad_scores(p["answer"], [text for text, _ in q.answers]) for p, q in zip(predictions, rows, strict=True)]
        em, f1 = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        metrics: dict[str, Any] = {"exact_match": float(em.mean() * 100), "f1": float(f1.mean() * 100), "n": len(rows)}
        lengths = np.array([len(q.answers[0][0].split()) if q.answers else 0 for q in rows])
        buckets = {}
        for low, high, name in LENGTH_BUCKETS:
            chosen = (lengths >= low) & (lengths <= high)
            if chosen.any():
                buckets[name] = _bucket(em, f1, chosen)
        if (lengths == 0).any():
            buckets["no answer"] = _bucket(em, f1, lengths == 0)
        metrics["by_answer_length"] = buckets  # where extractive models fail: long answers
        return metrics

    def records(self, predictions: list[dict[str, Any]], rows: list[Question], info: dict[str, Any],
                labels: list[str]) -> list[dict[str, Any]]:
        pairs = enumerate(zip(rows, predictions, strict=True), start=1)
        return [{"row": i, "id": q.id, "question": q.question, **p} for i, (q, p) in pairs]


def _bucket(em: np.ndarray, f1: np.ndarray, chosen: np.ndarray) -> dict[str, Any]:
    return {"exact_match": float(em[chosen].mean() * 100), "f1": float(f1[chosen].mean() * 100), "n": int(chosen.sum())}
