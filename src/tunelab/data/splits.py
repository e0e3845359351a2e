"""Seeded, stratified hold-out split for when the user gives no validation file."""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_split(labels: list, size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (train_rows, held_out_rows) indices; classes seen once stay in train."""
    counts = Counter(map(str, labels))
    rows = np.arange(len(labels))
    singleton = np.array([counts[str(label)] < 2 for label in labels])
    keep, pool = rows[singleton], rows[~singleton]
    pool_labels = [str(labels[i]) for i in pool]
    n_classes = len(set(pool_labels))
    n_held = max(int(round(size * len(pool))), n_classes)
    if n_held >= len(pool):  # too few rows to stratify; hold out what a plain split would
        n_held = max(1, int(round(size * len(pool))))
        stratify = None
    else:
        stratify = pool_labels
    train_rows, held_rows = train_test_split(pool, test_size=n_held, random_state=seed, stratify=stratify)
    return np.sort(np.concatenate([keep, train_rows])), np.sort(held_rows)
