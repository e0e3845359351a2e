"""Data layer: read tables, check them row by row, split them."""

from __future__ import annotations

from tunelab.data.checks import require_columns, require_texts, shared_texts
from tunelab.data.readers import read_table
from tunelab.data.splits import stratified_split

__all__ = ["read_table", "require_columns", "require_texts", "shared_texts", "stratified_split"]
