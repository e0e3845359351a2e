"""Optional baseline for `tunelab plan`: zero/few-shot prompting of an LLM behind an OpenAI-compatible API.

Configured only by the environment — TUNELAB_LLM_BASE_URL (e.g. http://localhost:8000/v1),
TUNELAB_LLM_MODEL and TUNELAB_LLM_API_KEY — and skipped when the base URL is unset. Nothing else
in tunelab depends on it.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from tunelab.tasks.classification import ClassificationData


def configured() -> bool:
    """True when an endpoint is configured."""
    return bool(os.environ.get("TUNELAB_LLM_BASE_URL"))


def prompt(text: str, labels: list[str], shots: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Chat messages asking for exactly one label, with `shots` as worked examples."""
    system = ("You label texts. Answer with exactly one of these labels and nothing else: " + ", ".join(labels) + ".")
    messages = [{"role": "system", "content": system}]
    for shot_text, shot_label in shots:
        messages += [{"role": "user", "content": shot_text}, {"role": "assistant", "content": shot_label}]
    return messages + [{"role": "user", "content": text}]


def parse_label(answer: str, labels: list[str]) -> int | None:
    """The label the answer names (exact match first, then the longest label it contains), else None."""
    cleaned = answer.strip().strip(".\"'`").lower()
    lowered = [label.lower() for label in labels]
    if cleaned in lowered:
        return lowered.index(cleaned)
    contained = [i for i, label in enumerate(lowered) if label in cleaned]
    return max(contained, key=lambda i: len(lowered[i])) if contained else None


def ask(messages: list[dict[str, str]], timeout: float = 60.0) -> str:
    """One chat completion (temperature 0)."""
    base = os.environ["TUNELAB_LLM_BASE_URL"].rstrip("/")
    body = json.dumps({"model": os.environ.get("TUNELAB_LLM_MODEL", "default"), "messages": messages,
                       "temperature": 0, "max_tokens": 16}).encode()
    request = urllib.request.Request(f"{base}/chat/completions", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {os.environ.get('TUNELAB_LLM_API_KEY', '')}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"] or ""


def score(data: ClassificationData, shots_per_class: int = 2, limit: int = 200, seed: int = 0) -> dict[str, Any]:
    """Accuracy and macro-F1 of the prompted LLM on (up to `limit` rows of) the validation set."""
    rng = np.random.default_rng(seed)
    shots = []
    for label_id, label in enumerate(data.labels):
        rows = np.flatnonzero(data.train.labels == label_id)
        shots += [(data.train.texts[i], label) for i in rng.choice(rows, size=min(shots_per_class, len(rows)), replace=False)]
    rng.shuffle(shots)
    rows = np.arange(min(limit, len(data.validation)))
    predicted = np.full(len(rows), -1)  # an answer naming no label counts as wrong
    try:
        for n, i in enumerate(rows):
            choice = parse_label(ask(prompt(data.validation.texts[i], data.labels, shots)), data.labels)
            predicted[n] = -1 if choice is None else choice
    except (urllib.error.URLError, OSError, KeyError, ValueError) as exc:
        return {"error": f"{os.environ['TUNELAB_LLM_BASE_URL']}: {type(exc).__name__}: {exc}"}
    gold = data.validation.labels[rows]
    macro_f1 = f1_score(gold, predicted, labels=list(range(len(data.labels))), average="macro", zero_division=0)
    return {"model": os.environ.get("TUNELAB_LLM_MODEL", "default"), "shots_per_class": shots_per_class, "rows": len(rows),
            "accuracy": float((predicted == gold).mean()), "macro_f1": float(macro_f1),
            "unparsed_answers": int((predicted == -1).sum())}
