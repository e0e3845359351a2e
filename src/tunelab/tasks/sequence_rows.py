"""Rows of text (and optional second text) with a target, shared by multi-label and regression classification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab.config import DataConfig
from tunelab.data import read_table, require_columns, require_texts
from tunelab.errors import UserError


@dataclass
class Row:
    """One input: text, optional pair, the target as read (None when unlabelled), its 1-based row number."""

    text: str
    pair: str | None
    target: Any
    row: int


def read_rows(source: str, data: DataConfig, with_labels: bool) -> tuple[list[Row], list[Any]]:
    """Texts and the raw label cells of a table."""
    frame = read_table(source, encoding=data.encoding)
    require_columns(frame, source, {"data.text_column": data.text_column, "data.text_pair_column": data.text_pair_column,
                                    "data.label_column": data.label_column if with_labels else None})
    texts = require_texts(frame, source, data.text_column)
    pairs = require_texts(frame, source, data.text_pair_column) if data.text_pair_column else [None] * len(texts)
    cells = frame[data.label_column].tolist() if with_labels else [None] * len(texts)
    return [Row(t, p, None, i) for i, (t, p) in enumerate(zip(texts, pairs, strict=True), start=1)], cells


def tokenize_rows(tokenizer: Any, rows: list[Row], max_length: int, targets: list[Any] | None) -> Any:
    """A datasets.Dataset of input ids (padded later, per batch) and, when given, float targets."""
    import datasets

    pairs = [r.pair for r in rows] if rows and rows[0].pair is not None else None
    columns = dict(tokenizer([r.text for r in rows], pairs, truncation=True, max_length=max_length))
    if targets is not None:
        columns["labels"] = targets
    return datasets.Dataset.from_dict(columns)


def row_error(source: str, row: int, column: str, message: str) -> UserError:
    """The one-line error for a bad label cell."""
    return UserError(f"{source}: row {row}, field {column!r}: {message}")
