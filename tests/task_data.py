"""Tiny, learnable data files for the task heads beyond classification (used by unit tests)."""

from __future__ import annotations

import json
import random
from pathlib import Path

PEOPLE = ["Anna", "Boris", "Chen", "Dara", "Emil", "Fatima"]
PLACES = ["Paris", "Lagos", "Oslo", "Quito", "Hanoi", "Perth"]
FILLER = ["went", "to", "visit", "friends", "in", "today", "with", "and", "from", "the", "city", "of"]


def write_conll(path: Path, sentences: int, seed: int, iob1: bool = False) -> Path:
    """CoNLL-style file: word, POS placeholder, tag; PER and LOC entities, one -DOCSTART- header."""
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- O", ""]
    for _ in range(sentences):
        words = []
        for _ in range(rng.randint(4, 9)):
            roll = rng.random()
            if roll < 0.2:
                words += [(rng.choice(PEOPLE), "PER"), (rng.choice(PEOPLE) + "son", "PER")]
            elif roll < 0.35:
                words.append((rng.choice(PLACES), "LOC"))
            else:
                words.append((rng.choice(FILLER), None))
        previous = None
        for word, kind in words:
            if kind is None:
                tag = "O"
            elif iob1:
                tag = f"I-{kind}"
            else:
                tag = f"I-{kind}" if previous == kind else f"B-{kind}"
            previous = kind
            lines.append(f"{word} X {tag}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_squad(path: Path, articles: int, seed: int) -> Path:
    """SQuAD v1.1-style JSON: 'X lives in Y.' contexts asking where/who."""
    rng = random.Random(seed)
    data = []
    for a in range(articles):
        paragraphs = []
        for p in range(3):
            person, place = rng.choice(PEOPLE), rng.choice(PLACES)
            filler = " ".join(rng.choice(FILLER) for _ in range(rng.randint(3, 12)))
            context = f"{filler}. {person} lives in {place}. {filler}."
            start = context.index(f"in {place}") + 3
            qas = [{"id": f"{a}-{p}-where", "question": f"Where does {person} live?",
                    "answers": [{"text": place, "answer_start": start}]},
                   {"id": f"{a}-{p}-who", "question": f"Who lives in {place}?",
                    "answers": [{"text": person, "answer_start": context.index(f"{person} lives")}]}]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"article {a}", "paragraphs": paragraphs})
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return path


ANIMALS = ["cat", "dog", "horse", "bird", "fish", "cow"]
ACTIONS = ["runs", "sleeps", "eats", "jumps", "swims", "sings"]


def write_pairs(path: Path, rows: int, seed: int) -> Path:
    """TSV of sentence pairs scored 0-5 by how many of (animal, action) they share."""
    rng = random.Random(seed)
    lines = ["sentence1\tsentence2\tscore"]
    for _ in range(rows):
        a, b = rng.choice(ANIMALS), rng.choice(ACTIONS)
        c = a if rng.random() < 0.5 else rng.choice(ANIMALS)
        d = b if rng.random() < 0.5 else rng.choice(ACTIONS)
        score = 2.5 * (a == c) + 2.5 * (b == d)
        lines.append(f"the {a} {b}\ta {c} {d}\t{score}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_multi_label(path: Path, rows: int, seed: int) -> Path:
    """JSONL with label lists: one label per animal/action family mentioned."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(rows):
            animal, action = rng.random() < 0.5, rng.random() < 0.5
            words = ([rng.choice(ANIMALS)] if animal else []) + ([rng.choice(ACTIONS)] if action else []) + ["here"]
            labels = (["animal"] if animal else []) + (["action"] if action else [])
            handle.write(json.dumps({"text": " ".join(words), "label": labels}) + "\n")
    return path


def write_regression(path: Path, rows: int, seed: int) -> Path:
    """CSV whose target is the number of positive words in the text."""
    rng = random.Random(seed)
    lines = ["text,label"]
    for _ in range(rows):
        k = rng.randint(0, 3)
        words = ["great"] * k + ["table"] * (3 - k)
        rng.shuffle(words)
        lines.append(f"{' '.join(words)},{k * 1.5}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
