"""Row-level checks shared by every task: columns exist, texts are present, splits do not leak."""

from __future__ import annotations

import pandas as pd

from tunelab.errors import UserError, did_you_mean


def require_columns(frame: pd.DataFrame, source: str, columns: dict[str, str | None]) -> None:
    """Fail naming the first missing column; `columns` maps config key -> column name (None = unused)."""
    for key, column in columns.items():
        if column is not None and column not in frame.columns:
            raise UserError(
                f"{source}: no column {column!r} (set by {key}){did_you_mean(column, frame.columns)};"
                f" columns are: {', '.join(frame.columns)}"
            )


def require_texts(frame: pd.DataFrame, source: str, column: str) -> list[str]:
    """Return the column as strings, failing on the first empty or missing text with its row number."""
    texts = []
    for row, value in enumerate(frame[column].tolist(), start=1):
        if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
            raise UserError(f"{source}: row {row}, field {column!r}: empty text")
        if not isinstance(value, str):
            raise UserError(f"{source}: row {row}, field {column!r}: expected text, got {type(value).__name__} {value!r}")
        texts.append(value)
    return texts


def shared_texts(train: list[str], other: list[str]) -> list[int]:
    """Rows (1-based) of `other` whose text also occurs in `train`, after whitespace and case folding."""
    seen = {" ".join(t.split()).lower() for t in train}
    return [row for row, text in enumerate(other, start=1) if " ".join(text.split()).lower() in seen]
