"""Unlabelled text for continued pre-training: a .txt file, a folder of .txt files, or a table column."""

from __future__ import annotations

from pathlib import Path

from tunelab.data.readers import FORMATS, decode_text, read_table
from tunelab.errors import UserError, did_you_mean

TEXT_SUFFIXES = (".txt", ".text", ".md")


def read_corpus(source: str, text_column: str = "text", encoding: str = "utf-8") -> list[str]:
    """Non-empty documents (one per line of a .txt file, one per row of a table), in order."""
    path = Path(source)
    if not source.startswith("hf:") and not path.exists():
        raise UserError(f"{source}: corpus not found")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise UserError(f"{source}: folder has no .txt files")
        texts = [t for f in files for t in _read_lines(f, encoding)]
    elif path.suffix.lower() in TEXT_SUFFIXES:
        texts = _read_lines(path, encoding)
    elif source.startswith("hf:") or path.suffix.lower() in FORMATS:
        frame = read_table(source, encoding=encoding)
        if text_column not in frame.columns:
            raise UserError(f"{source}: no text column {text_column!r}{did_you_mean(text_column, frame.columns)};"
                            f" columns are: {', '.join(frame.columns)} (set adapt.text_column)")
        texts = [str(v).strip() for v in frame[text_column].tolist() if isinstance(v, str) and v.strip()]
    else:
        raise UserError(f"{source}: unknown corpus type {path.suffix!r}; expected .txt, a folder of .txt, CSV, TSV, JSONL or Parquet")
    if not texts:
        raise UserError(f"{source}: corpus has no text")
    return texts


def _read_lines(path: Path, encoding: str) -> list[str]:
    raw = path.read_bytes()
    if b"\x00" in raw[:8192]:
        raise UserError(f"{path}: looks like a binary file (NUL bytes), not text")
    text = decode_text(raw, str(path), encoding, setting="adapt.encoding")
    return [line.strip() for line in text.splitlines() if line.strip()]
