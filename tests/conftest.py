"""Shared fixtures: a tiny randomly initialised BERT built in-process, and small labelled files."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and the bundled MiniLM's tokenizer, saved to disk."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from tunelab.models import bundled_model_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# Two clearly separable classes, so even a tiny model learns them in a few steps.
POSITIVE = ["great", "wonderful", "excellent", "lovely", "superb", "delightful", "fantastic", "brilliant"]
NEGATIVE = ["awful", "terrible", "horrible", "dreadful", "poor", "miserable", "disappointing", "bad"]
NOUNS = ["film", "meal", "service", "hotel", "book", "trip", "show", "product", "concert", "game"]


def make_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` (text, label) rows: 'the <noun> was <adjective>' with a sentiment label."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        word = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
        rows.append((f"the {rng.choice(NOUNS)} was {word} number {i}", label))
    return rows


def write_csv(path: Path, rows: list[tuple], header: tuple[str, ...] = ("text", "label")) -> Path:
    """Write rows as a CSV with a header; returns the path."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture()
def sentiment_files(tmp_path: Path) -> tuple[Path, Path]:
    """A 64-row train and a 24-row validation CSV of the toy sentiment task."""
    return write_csv(tmp_path / "train.csv", make_rows(64, 1)), write_csv(tmp_path / "dev.csv", make_rows(24, 2))


def tiny_config(tiny_model: Path, train: Path, validation: Path | None, strategy: str, store: Path, **overrides):
    """A RunConfig for a fast run of `strategy` on the tiny model."""
    from tunelab.config import load_config

    values = {"strategy": strategy, "model.name_or_path": str(tiny_model), "data.train": str(train),
              "quiet": True, "model.max_length": 32, "train.num_train_epochs": 3,
              "train.per_device_train_batch_size": 8, "train.logging_steps": 5, "fewshot.iterations": 2}
    if validation is not None:
        values["data.validation"] = str(validation)
    values.update(overrides)
    return load_config(None, values)
