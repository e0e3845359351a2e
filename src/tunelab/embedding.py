"""Pooled sentence embeddings from a frozen encoder, and their on-disk cache.

The cache is keyed by everything that changes a vector — model weights, tokenizer, max length,
pooling — plus a hash of the text, so a second run (or another strategy) over the same texts
reuses them, and a changed model never returns stale vectors.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.hardware import autocast


def pool(hidden: Any, mask: Any, pooling: str) -> Any:
    """Mean over real tokens (padding excluded), or the first ([CLS]) token."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def embed(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    max_length: int = 128,
    pooling: str = "mean",
    batch_size: int = 64,
    progress: bool = True,
    precision: str = "fp32",
) -> np.ndarray:
    """Embed texts in length-sorted batches (little padding), under `precision` autocast; float32 [n, hidden] in input order."""
    import torch
    from tqdm.auto import tqdm

    order = np.argsort([-len(t) - (len(pairs[i]) if pairs else 0) for i, t in enumerate(texts)], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    device = next(model.parameters()).device
    model.eval()
    bar = tqdm(total=len(texts), desc="Embedding", unit="text", disable=not progress)
    with torch.inference_mode(), autocast(precision, device.type), bar:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = tokenizer(
                [texts[i] for i in rows],
                [pairs[i] for i in rows] if pairs else None,
                truncation=True, max_length=max_length, padding=True, return_tensors="pt",
            ).to(device)
            hidden = model(**batch).last_hidden_state
            out[rows] = pool(hidden, batch["attention_mask"], pooling).float().cpu().numpy()
            bar.update(len(rows))
    return out


def text_key(text: str, pair: str | None) -> str:
    """Stable hash of one input (a pair hashes differently from its concatenation)."""
    payload = text if pair is None else f"{text}\x00{pair}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """SQLite file of text-hash -> vector for one (model, tokenizer, max length, pooling) key."""

    def __init__(self, root: str | Path, key: str) -> None:
        self.path = Path(root) / f"{key}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS vectors (text_hash TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def get_or_compute(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None,
        compute: Callable[[list[str], list[str] | None], np.ndarray],
    ) -> np.ndarray:
        """Vectors for all inputs: cached ones read, missing ones computed once and stored."""
        keys = [text_key(t, pairs[i] if pairs else None) for i, t in enumerate(texts)]
        found: dict[str, np.ndarray] = {}
        with self._connect() as db:
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 900):  # SQLite's bound-parameter limit
                chunk = unique[start:start + 900]
                query = f"SELECT text_hash, vector FROM vectors WHERE text_hash IN ({','.join('?' * len(chunk))})"
                for text_hash, blob in db.execute(query, chunk):
                    found[text_hash] = np.frombuffer(blob, dtype=np.float32)
        todo = [i for i, k in enumerate(keys) if k not in found]
        todo = list({keys[i]: i for i in todo}.values())  # each missing text computed once
        self.hits = len(keys) - sum(1 for k in keys if k not in found)
        self.misses = len(todo)
        if todo:
            vectors = compute([texts[i] for i in todo], [pairs[i] for i in todo] if pairs else None)
            with self._connect() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                    [(keys[i], vectors[j].astype(np.float32).tobytes()) for j, i in enumerate(todo)],
                )
            for j, i in enumerate(todo):
                found[keys[i]] = vectors[j].astype(np.float32)
        return np.stack([found[k] for k in keys])
